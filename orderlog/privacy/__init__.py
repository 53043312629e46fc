"""Personal data: encrypted per customer before it is stored, erasable by destroying a key."""
