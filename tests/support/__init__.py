"""What tests share: paths, real servers (moto, pebble, echo), certificates, engine hosts and
load clients. No test module imports another; they all import from here."""
