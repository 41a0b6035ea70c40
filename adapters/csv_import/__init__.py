"""Reading fans out of real spreadsheets: pure, streaming code with no I/O.

``decoding`` turns bytes into text (BOM, UTF-16, binary detection), ``records`` cuts text into
spreadsheet rows (delimiter sniffing, quoted newlines), ``headers`` maps column names to fan
fields, ``values`` parses cells, ``reader`` strings them together, ``multipart`` pulls the file
out of a multipart/form-data body as it arrives.
"""
