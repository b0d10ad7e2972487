"""Reading a corpus and cutting it into segments: audio, transcripts, speech recognition, alignment."""
