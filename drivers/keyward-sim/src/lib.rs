//! A PKCS#11 module in front of SoftHSM that adds what a real USB key has (filled in by the simulator issue).
