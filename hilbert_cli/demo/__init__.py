"""The synthetic demo corpus: interview texts and offline speech synthesis."""
