"""The model, its losses, the trainer, and model.pt."""
