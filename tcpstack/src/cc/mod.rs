//! Congestion control: NewReno (RFC 5681/6582) and CUBIC (RFC 9438).
