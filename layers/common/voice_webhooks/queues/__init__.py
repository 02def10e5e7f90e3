"""The RecordingsQueue message and its publisher."""
