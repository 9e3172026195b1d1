//! threadlib
