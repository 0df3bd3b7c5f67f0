//! PKCS#11 layer.
