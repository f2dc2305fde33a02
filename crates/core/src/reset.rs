//! Reset-time parsing: when a provider says a limit lifts.
//!
//! (Placeholder being replaced by the full parser.)
