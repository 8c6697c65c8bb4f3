//! A hyper-util HTTPS connector (work in progress).
