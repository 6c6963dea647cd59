//! MLPerf llama2-70b pandas DataFrame pickle
//! (`open_orca_gpt4_tokenized_llama.sampled_24576.pkl`).
//!
//! `serde-pickle` parses the pickle with `replace_unresolved_globals()` (the
//! pandas/numpy classes become placeholders) and `keep_restore_state()` (the
//! `__setstate__` arguments are kept), and [`read_dataframe`] walks pandas'
//! BlockManager state:
//!
//! - `_mgr` = `(blocks, [columns_index, row_index])`;
//! - a block = `(values, placement, ndim)`; placement is a `(start, stop,
//!   step)` slice or an int64 array of column positions;
//! - a numpy array is `(1, shape, dtype, is_fortran, data)` (protocol 4) or
//!   `(bytes, dtype, shape, order)` (protocol 5); object arrays carry a list,
//!   numeric ones little-endian bytes. numpy's dtype code can be lost when a
//!   dtype is first memoised, so numeric element types are inferred from the
//!   element size (8 bytes: int64 unless the code says `f8`);
//! - pandas 3 string columns are `((storage, na_value), object array)`.
//!
//! Checked against pandas 2.3 and 3.0 pickles, protocols 4 and 5
//! (`tests/fixtures/datasets/`). Anything else fails with
//! [`DatasetError::Pickle`], whose message gives the one-line conversion to
//! JSON Lines ([`PICKLE_TO_JSONL`]).

use std::path::Path;

use serde_pickle::{DeOptions, HashableValue, Value};

use crate::{DatasetError, Sample, record_error};

/// The one-line Python conversion of a pandas pickle to JSON Lines that
/// [`crate::DatasetFormat::Jsonl`] reads with the default field names
/// (`IN` and `OUT` are the file names).
pub const PICKLE_TO_JSONL: &str = "python -c \"import pandas as pd; pd.read_pickle('IN').to_json('OUT', orient='records', lines=True)\"";

pub(crate) fn conversion_command(path: &Path) -> String {
    let input = path.display().to_string();
    let output = path.with_extension("jsonl").display().to_string();
    PICKLE_TO_JSONL
        .replace("IN", &input)
        .replace("OUT", &output)
}

/// A DataFrame's columns, in frame order, as JSON values (strings, numbers,
/// lists, null).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataFrame {
    /// `(name, values)` per column; every column has `rows` values.
    pub columns: Vec<(String, Vec<serde_json::Value>)>,
    /// Row count.
    pub rows: usize,
}

impl DataFrame {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&[serde_json::Value]> {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

fn pickle_error(path: &Path, message: impl Into<String>) -> DatasetError {
    DatasetError::Pickle {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn not_a_dataframe(path: &Path, message: impl Into<String>) -> DatasetError {
    DatasetError::NotADataFrame {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads a pandas DataFrame pickle.
pub fn read_dataframe(path: &Path) -> Result<DataFrame, DatasetError> {
    let file = std::fs::File::open(path).map_err(|e| crate::io_error(path, e))?;
    decode_dataframe(path, std::io::BufReader::new(file))
}

/// Decodes a DataFrame pickle from `reader`; `path` names it in errors. A
/// pickle is decoded whole (serde-pickle builds the value tree in memory):
/// convert a very large one to JSON Lines, which is streamed.
fn decode_dataframe(path: &Path, reader: impl std::io::Read) -> Result<DataFrame, DatasetError> {
    // serde-pickle 1.2 panics on some malformed pickles instead of failing
    // (a set or frozenset holding NaN floats: sorting them into a BTreeSet
    // sees no total order; found by fuzzing). A bad file must be an error
    // naming it, never a crash, so its panic is caught here. Nothing
    // outlives the closure: unwind safety holds.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        serde_pickle::value_from_reader(
            reader,
            DeOptions::new()
                .replace_unresolved_globals()
                .keep_restore_state(),
        )
    }))
    .map_err(|_| {
        not_a_dataframe(
            path,
            "malformed pickle: the decoder gave up on its contents (e.g. a set holding NaN)",
        )
    })?;
    let value = decoded.map_err(|e| not_a_dataframe(path, e.to_string()))?;
    // Only a DataFrame's own layout gets the pandas conversion advice:
    // unpickling anything else in Python would run whatever it holds.
    let is_dataframe = matches!(&value, Value::Dict(state) if get(state, "_mgr").is_some());
    walk(&value).map_err(|m| {
        if is_dataframe {
            pickle_error(path, m)
        } else {
            not_a_dataframe(path, m)
        }
    })
}

fn walk(root: &Value) -> Result<DataFrame, String> {
    let Value::Dict(state) = root else {
        return Err("not a DataFrame pickle (top level is not a state dict)".into());
    };
    let mgr = get(state, "_mgr").ok_or("no `_mgr` (not a pandas DataFrame)")?;
    let [blocks, axes] = seq(mgr).ok_or("`_mgr` is not (blocks, axes)")? else {
        return Err("`_mgr` is not (blocks, axes)".into());
    };
    let axes = seq(axes).ok_or("`_mgr` axes are not a list")?;
    let columns_index = axes.first().ok_or("`_mgr` has no column axis")?;
    let names = index_values(columns_index)?;
    let names: Vec<String> = names
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            other => Err(format!("column name {other:?} is not a string")),
        })
        .collect::<Result<_, _>>()?;
    let mut columns: Vec<Option<Vec<serde_json::Value>>> = vec![None; names.len()];
    let mut rows = None;
    for (b, block) in seq(blocks)
        .ok_or("blocks are not a tuple")?
        .iter()
        .enumerate()
    {
        let parts = seq(block).ok_or(format!("block {b} is not (values, placement, ndim)"))?;
        let (values, placement) = match parts {
            [v, p, _] | [v, p] => (v, p),
            _ => return Err(format!("block {b} is not (values, placement, ndim)")),
        };
        let positions = placement_positions(placement).map_err(|m| format!("block {b}: {m}"))?;
        let array = ndarray(values).map_err(|m| format!("block {b}: {m}"))?;
        let (ncols, nrows) = match array.shape.as_slice() {
            [n] => (1, *n),
            [c, n] => (*c, *n),
            s => return Err(format!("block {b}: unexpected shape {s:?}")),
        };
        if ncols != positions.len() {
            return Err(format!(
                "block {b}: {ncols} columns of values but {} placements",
                positions.len()
            ));
        }
        if *rows.get_or_insert(nrows) != nrows {
            return Err(format!(
                "block {b}: {nrows} rows, other blocks have {rows:?}"
            ));
        }
        let cells = array.cells().map_err(|m| format!("block {b}: {m}"))?;
        for (j, &pos) in positions.iter().enumerate() {
            let col: Vec<serde_json::Value> = (0..nrows)
                .map(|i| {
                    let k = if array.fortran {
                        i * ncols + j
                    } else {
                        j * nrows + i
                    };
                    cells[k].clone()
                })
                .collect();
            let slot = columns
                .get_mut(pos)
                .ok_or(format!("block {b}: column position {pos} out of range"))?;
            *slot = Some(col);
        }
    }
    let rows = rows.unwrap_or(0);
    let columns = names
        .into_iter()
        .zip(columns)
        .map(|(n, c)| {
            c.map(|c| (n.clone(), c))
                .ok_or(format!("column `{n}` has no block"))
        })
        .collect::<Result<_, _>>()?;
    Ok(DataFrame { columns, rows })
}

fn get<'a>(
    dict: &'a std::collections::BTreeMap<HashableValue, Value>,
    key: &str,
) -> Option<&'a Value> {
    dict.get(&HashableValue::String(key.to_string()))
}

fn seq(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Tuple(x) | Value::List(x) => Some(x),
        _ => None,
    }
}

fn as_usize(v: &Value) -> Option<usize> {
    match v {
        Value::I64(n) => usize::try_from(*n).ok(),
        _ => None,
    }
}

/// An Index's values: `(None, {"data": array, ...})` or a RangeIndex dict.
fn index_values(index: &Value) -> Result<Vec<Value>, String> {
    let state = match seq(index) {
        Some([_, state]) => state,
        _ => index,
    };
    let Value::Dict(d) = state else {
        return Err("column index has no state dict".into());
    };
    if let Some(data) = get(d, "data") {
        let a = ndarray(data)?;
        return match a.data {
            ArrayData::Objects(v) => Ok(v.to_vec()),
            ArrayData::Bytes(..) => Err("column names are not objects".into()),
        };
    }
    let (start, stop, step) = (
        get(d, "start").and_then(as_i64).unwrap_or(0),
        get(d, "stop")
            .and_then(as_i64)
            .ok_or("range index without `stop`")?,
        get(d, "step").and_then(as_i64).unwrap_or(1),
    );
    if step == 0 {
        return Err("range index with step 0".into());
    }
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < stop) || (step < 0 && i > stop) {
        out.push(Value::String(i.to_string()));
        i += step;
    }
    Ok(out)
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::I64(n) => Some(*n),
        _ => None,
    }
}

fn placement_positions(p: &Value) -> Result<Vec<usize>, String> {
    if let Some(items) = seq(p)
        && let [Value::I64(start), Value::I64(stop), Value::I64(step)] = items
        && *step > 0
    {
        // A slice (start, stop, step).
        let (start, stop) = (usize::try_from(*start), usize::try_from(*stop));
        if let (Ok(start), Ok(stop)) = (start, stop) {
            return Ok((start..stop).step_by(*step as usize).collect());
        }
    }
    let a = ndarray(p).map_err(|m| format!("placement: {m}"))?;
    match &a.data {
        ArrayData::Bytes(bytes, _) if bytes.len() % 8 == 0 => Ok(bytes
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                i64::from_le_bytes(b).max(0) as usize
            })
            .collect()),
        ArrayData::Objects(v) => v
            .iter()
            .map(|x| as_usize(x).ok_or_else(|| "placement is not integers".to_string()))
            .collect(),
        ArrayData::Bytes(..) => Err("placement is not an int64 array".into()),
    }
}

enum ArrayData<'a> {
    Objects(&'a [Value]),
    /// Raw little-endian bytes and the dtype code if it survived.
    Bytes(&'a [u8], Option<&'a str>),
}

struct NdArray<'a> {
    shape: Vec<usize>,
    fortran: bool,
    data: ArrayData<'a>,
}

fn dtype_code(d: &Value) -> Option<&str> {
    match seq(d)?.first()? {
        Value::String(s) => Some(s.as_str()),
        _ => None,
    }
}

fn ndarray(v: &Value) -> Result<NdArray<'_>, String> {
    let items = seq(v).ok_or("value is not a numpy array")?;
    let shape_of = |s: &Value| -> Result<Vec<usize>, String> {
        seq(s)
            .ok_or("array shape is not a tuple")?
            .iter()
            .map(|x| as_usize(x).ok_or_else(|| "array shape is not integers".to_string()))
            .collect()
    };
    match items {
        // Protocol 4: ndarray.__setstate__((version, shape, dtype, is_fortran, data)).
        [Value::I64(_), shape, dtype, Value::Bool(fortran), data] => Ok(NdArray {
            shape: shape_of(shape)?,
            fortran: *fortran,
            data: match data {
                Value::List(x) | Value::Tuple(x) => ArrayData::Objects(x),
                Value::Bytes(b) => ArrayData::Bytes(b, dtype_code(dtype)),
                _ => return Err("array data is neither a list nor bytes".into()),
            },
        }),
        // Protocol 5: numpy's _frombuffer(buffer, dtype, shape, order).
        [Value::Bytes(b), dtype, shape, order] => Ok(NdArray {
            shape: shape_of(shape)?,
            fortran: matches!(order, Value::String(o) if o == "F"),
            data: ArrayData::Bytes(b, dtype_code(dtype)),
        }),
        // pandas 3 StringArray: ((storage, na_value), object array).
        [Value::Tuple(_), inner] => ndarray(inner),
        _ => Err("unsupported numpy array layout".into()),
    }
}

impl NdArray<'_> {
    fn len(&self) -> usize {
        self.shape.iter().product()
    }

    fn cells(&self) -> Result<Vec<serde_json::Value>, String> {
        let n = self.len();
        match &self.data {
            ArrayData::Objects(v) => {
                if v.len() != n {
                    return Err(format!("{} objects for shape {:?}", v.len(), self.shape));
                }
                Ok(v.iter().map(to_json).collect())
            }
            ArrayData::Bytes(bytes, code) => {
                if n == 0 {
                    return Ok(Vec::new());
                }
                if bytes.len() % n != 0 {
                    return Err(format!("{} bytes for shape {:?}", bytes.len(), self.shape));
                }
                let size = bytes.len() / n;
                let kind = code.and_then(|c| c.chars().find(|ch| ch.is_ascii_alphabetic()));
                bytes.chunks_exact(size).map(|c| numeric(c, kind)).collect()
            }
        }
    }
}

fn numeric(c: &[u8], kind: Option<char>) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match (c.len(), kind) {
        (8, Some('f')) => {
            let v = f64::from_le_bytes(c.try_into().map_err(|_| "bad f8")?);
            serde_json::Number::from_f64(v).map_or(J::Null, J::Number)
        }
        (8, Some('u')) => J::from(u64::from_le_bytes(c.try_into().map_err(|_| "bad u8")?)),
        (8, _) => J::from(i64::from_le_bytes(c.try_into().map_err(|_| "bad i8")?)),
        (4, Some('f')) => {
            let v = f32::from_le_bytes(c.try_into().map_err(|_| "bad f4")?);
            serde_json::Number::from_f64(f64::from(v)).map_or(J::Null, J::Number)
        }
        (4, _) => J::from(i32::from_le_bytes(c.try_into().map_err(|_| "bad i4")?)),
        (1, Some('b') | None) => J::Bool(c[0] != 0),
        (1, _) => J::from(c[0]),
        (n, _) => return Err(format!("unsupported numeric element size {n}")),
    })
}

fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::None => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::I64(n) => J::from(*n),
        Value::Int(n) => J::String(n.to_string()),
        Value::F64(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::String(s) => J::String(s.clone()),
        Value::Bytes(b) => J::Array(b.iter().map(|&x| J::from(x)).collect()),
        Value::List(x) | Value::Tuple(x) => J::Array(x.iter().map(to_json).collect()),
        // A numpy array per cell (token ids stored as arrays).
        other => match ndarray(other).ok().and_then(|a| a.cells().ok()) {
            Some(cells) => J::Array(cells),
            None => J::Null,
        },
    }
}

pub(crate) fn load(path: &Path, reader: impl std::io::Read) -> Result<Vec<Sample>, DatasetError> {
    let frame = decode_dataframe(path, reader)?;
    let tokens = frame
        .column("tok_input")
        .ok_or_else(|| pickle_error(path, "the DataFrame has no `tok_input` column"))?;
    let output = frame.column("output");
    let input = frame.column("input");
    let mut samples = Vec::with_capacity(frame.rows);
    for (i, t) in tokens.iter().enumerate() {
        let ids = t
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
                    .collect::<Option<Vec<u32>>>()
            })
            .ok_or_else(|| {
                record_error(path, i, "field `tok_input`: expected a list of token ids")
            })?;
        let text = |col: Option<&[serde_json::Value]>,
                    name: &str|
         -> Result<Option<String>, DatasetError> {
            match col.map(|c| &c[i]) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(record_error(
                    path,
                    i,
                    format!("field `{name}`: expected a string"),
                )),
            }
        };
        samples.push(Sample {
            input_tokens: ids,
            input_text: text(input, "input")?,
            reference: text(output, "output")?,
            max_output_tokens: None,
        });
    }
    Ok(samples)
}
