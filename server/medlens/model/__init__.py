"""The model: a pretrained CNN backbone for features and XGBoost heads for the decision.

Plain functions on images; nothing here touches the network or knows about HTTP.
"""
