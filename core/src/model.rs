//! Compiled configuration (filled in next).
