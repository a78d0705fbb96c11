"""Server-rendered pages: upload, history, detail, and the permission-checked picture files."""
