"""`make sam-local`: sample events and emulator scenarios through the real SAM CLI (docs/sam-local.md)."""
