//! Server (being written).
