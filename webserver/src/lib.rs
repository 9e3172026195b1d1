//! webserver
