"""Device models: a device's latency for networks of the ThreshNet family, profiled once on
that device (``profile_device``) and predicted from a config alone (``DeviceModel``)."""

from threshsearch.devicemodel.predictor import DeviceModel, load_device_model
from threshsearch.devicemodel.profiling import profile_device

__all__ = ["DeviceModel", "load_device_model", "profile_device"]
