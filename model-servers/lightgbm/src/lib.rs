//! Pure-Rust evaluator for LightGBM text models (`model.txt`).
