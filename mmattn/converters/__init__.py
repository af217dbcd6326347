"""Official-checkpoint converters (logic for tools/model_converters/*2mmattn.py)."""
