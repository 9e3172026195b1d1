//! iolib
