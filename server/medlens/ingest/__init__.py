"""Getting images into MedLens: safe downloads, decoding, PDF extraction and page scanning.

Everything here that touches the network or untrusted bytes reports failures as
`MedLensError(code, message)`; nothing here imports the server or the model.
"""
