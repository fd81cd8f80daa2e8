"""Measuring what works on this device: probes built from the person's notes, the router's
calibration (``run_calibration``) and the trade-off study (``assistant bench study``)."""
