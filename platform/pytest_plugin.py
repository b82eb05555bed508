"""pytest plug-in (entry point ``pytest11``): fixtures for testing apps on edgelet."""
