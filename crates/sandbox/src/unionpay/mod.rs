//! The simulated UnionPay: not written yet.
