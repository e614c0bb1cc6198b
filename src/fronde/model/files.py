"""The weight files of a model directory (Hugging Face's names), apart from the code that reads them: lineage and
the run listings hash or look for them without importing torch."""

WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
MTP_WEIGHTS = "mtp.safetensors"  # the MTP layer, kept apart (see fronde.model.checkpoint)
