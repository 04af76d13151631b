"""The served model: preprocessing, the ONNX graph in ONNX Runtime, the XGBoost heads, calibration
and the model card. Plain functions on images; nothing here touches the network or knows about
HTTP, and nothing here imports torch or `medlens.training`.
"""
