//! The tensor the runtimes work in: a row-major f32/f64 (or bytes) array plus feature names.

use std::borrow::Cow;

use crate::error::ModelError;

/// Element storage of a [`Tensor`], row-major.
///
/// Numeric wire types are widened or narrowed into one of the two float widths when
/// decoded (v1 JSON numbers and `tensor.values` are doubles, so they arrive as `F64`;
/// v2 `FP32`/`FP16`/8- and 16-bit integers/`BOOL` arrive as `F32`, the rest as `F64`).
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// v2 `BYTES` elements (also v1 ndarray strings are *not* accepted into this: v1 keeps
    /// non-numeric data in `strData`/`jsonData`).
    Bytes(Vec<Vec<u8>>),
}

impl Values {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::F64(v) => v.len(),
            Values::Bytes(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A dense tensor: shape, row-major values and (optional) feature/column names.
///
/// `name` is the v2 tensor name (empty for Seldon v1 payloads); `names` are Seldon v1
/// `data.names` (feature names on input, class names on output).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub names: Vec<String>,
    pub shape: Vec<usize>,
    pub values: Values,
}

impl Tensor {
    /// A tensor after checking that `shape` holds exactly `values.len()` elements.
    pub fn new(shape: Vec<usize>, values: Values) -> Result<Self, ModelError> {
        let expected: usize = shape.iter().product();
        if expected != values.len() {
            return Err(ModelError::BadData(format!(
                "shape {shape:?} needs {expected} values, got {}",
                values.len()
            )));
        }
        Ok(Tensor {
            name: String::new(),
            names: Vec::new(),
            shape,
            values,
        })
    }

    /// A `rows × cols` f32 matrix.
    pub fn matrix_f32(rows: usize, cols: usize, values: Vec<f32>) -> Result<Self, ModelError> {
        Self::new(vec![rows, cols], Values::F32(values))
    }

    /// A `rows × cols` f64 matrix.
    pub fn matrix_f64(rows: usize, cols: usize, values: Vec<f64>) -> Result<Self, ModelError> {
        Self::new(vec![rows, cols], Values::F64(values))
    }

    /// Sets the column names (Seldon v1 `data.names`).
    pub fn with_names(mut self, names: Vec<String>) -> Self {
        self.names = names;
        self
    }

    /// Sets the v2 tensor name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Rows when read as a matrix: the first dimension (1 for a 1-D or scalar tensor).
    pub fn rows(&self) -> usize {
        if self.shape.len() < 2 {
            1
        } else {
            self.shape[0]
        }
    }

    /// Columns when read as a matrix: the product of all dimensions after the first
    /// (the only dimension for a 1-D tensor, so `[x1, x2, x3]` is one row of 3 features,
    /// as Seldon's wrapper treats a 1-D ndarray).
    pub fn cols(&self) -> usize {
        match self.shape.len() {
            0 => 1,
            1 => self.shape[0],
            _ => self.shape[1..].iter().product(),
        }
    }

    /// Checks the matrix view has `expected` columns ("wrong number of features" → 400).
    pub fn expect_cols(&self, expected: usize) -> Result<(), ModelError> {
        if self.cols() != expected {
            return Err(ModelError::BadData(format!(
                "expected {expected} features per row, got {} (shape {:?})",
                self.cols(),
                self.shape
            )));
        }
        Ok(())
    }

    /// The values as f32 (borrowed when already f32). Bytes are a dtype error.
    pub fn as_f32(&self) -> Result<Cow<'_, [f32]>, ModelError> {
        match &self.values {
            Values::F32(v) => Ok(Cow::Borrowed(v)),
            #[allow(clippy::cast_possible_truncation)]
            Values::F64(v) => Ok(Cow::Owned(v.iter().map(|x| *x as f32).collect())),
            Values::Bytes(_) => Err(Self::not_numeric()),
        }
    }

    /// The values as f64 (borrowed when already f64). Bytes are a dtype error.
    pub fn as_f64(&self) -> Result<Cow<'_, [f64]>, ModelError> {
        match &self.values {
            Values::F64(v) => Ok(Cow::Borrowed(v)),
            Values::F32(v) => Ok(Cow::Owned(v.iter().map(|x| f64::from(*x)).collect())),
            Values::Bytes(_) => Err(Self::not_numeric()),
        }
    }

    fn not_numeric() -> ModelError {
        ModelError::BadData("expected a numeric tensor, got BYTES".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_rejects_shape_value_mismatch() {
        let err = Tensor::new(vec![2, 2], Values::F32(vec![1.0; 3])).unwrap_err();
        assert_eq!(err.to_string(), "shape [2, 2] needs 4 values, got 3");
    }

    #[test]
    fn matrix_view_of_1d_is_one_row() {
        let t = Tensor::new(vec![3], Values::F64(vec![1.0, 2.0, 3.0])).unwrap();
        assert_eq!((t.rows(), t.cols()), (1, 3));
        let t = Tensor::new(vec![2, 2, 2], Values::F32(vec![0.0; 8])).unwrap();
        assert_eq!((t.rows(), t.cols()), (2, 4));
    }

    #[test]
    fn expect_cols_names_both_counts() {
        let t = Tensor::matrix_f32(1, 3, vec![0.0; 3]).unwrap();
        assert!(t.expect_cols(3).is_ok());
        let err = t.expect_cols(4).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected 4 features per row, got 3")
        );
    }

    #[test]
    fn conversions_borrow_or_convert_and_reject_bytes() {
        let t = Tensor::matrix_f64(1, 2, vec![1.5, 2.5]).unwrap();
        assert!(matches!(t.as_f64().unwrap(), Cow::Borrowed(_)));
        assert_eq!(&*t.as_f32().unwrap(), &[1.5f32, 2.5]);
        let b = Tensor::new(vec![1], Values::Bytes(vec![b"x".to_vec()])).unwrap();
        assert!(b.as_f32().is_err());
        assert!(b.as_f64().is_err());
    }
}
