//! UnionPay connector: not written yet.
