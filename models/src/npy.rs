//! Reads the `.npy` reference tensors (NumPy format 1.0/2.0, little-endian f32, C order) that the
//! conformance tests and the browser benchmark compare against, and writes them (format 1.0) for
//! the operator cases the browser test hands the worker. Hand-written because it is one
//! fixed variant of a tiny format, and the same code must run in the browser worker.

/// A tensor read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Values in C order.
    pub data: Vec<f32>,
}

/// Parses a `.npy` file holding little-endian f32 in C order.
pub fn read_f32(bytes: &[u8]) -> Result<NpyTensor, String> {
    let rest = bytes.strip_prefix(b"\x93NUMPY").ok_or("not a .npy file (bad magic)")?;
    let (major, rest) = rest.split_first().ok_or("truncated .npy header")?;
    let rest = rest.get(1..).ok_or("truncated .npy header")?;
    let (header_len, rest) = match major {
        1 if rest.len() >= 2 => (u16::from_le_bytes([rest[0], rest[1]]) as usize, &rest[2..]),
        2 | 3 if rest.len() >= 4 => (
            u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize,
            &rest[4..],
        ),
        _ => return Err(format!("unsupported .npy version {major}")),
    };
    let header = std::str::from_utf8(rest.get(..header_len).ok_or("truncated .npy header")?)
        .map_err(|_| "the .npy header is not text")?;
    if !header.contains("'descr': '<f4'") {
        return Err(format!("expected little-endian f32 ('<f4'), header is {header}"));
    }
    if header.contains("'fortran_order': True") {
        return Err("Fortran-ordered .npy is not supported".into());
    }
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or("the .npy header has no shape")?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format!("bad dimension {s:?} in .npy shape")))
        .collect::<Result<_, _>>()?;
    let body = &rest[header_len..];
    let count: usize = shape.iter().product();
    if body.len() != count * 4 {
        return Err(format!(
            "the .npy body holds {} bytes, shape {shape:?} needs {}",
            body.len(),
            count * 4
        ));
    }
    let data = body
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(NpyTensor { shape, data })
}

/// Writes `tensor` as a `.npy` file (format 1.0), as NumPy does: the header padded with spaces
/// so the data starts at a multiple of 64 bytes.
pub fn write_f32(tensor: &NpyTensor) -> Vec<u8> {
    let dims: Vec<String> = tensor.shape.iter().map(usize::to_string).collect();
    let shape = match dims.as_slice() {
        [one] => format!("({one},)"),
        dims => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic, version and length take 10 bytes; the header ends with a newline.
    let padding = (64 - (10 + header.len() + 1) % 64) % 64;
    header.extend(std::iter::repeat_n(' ', padding));
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    tensor
        .data
        .iter()
        .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, body: &[f32]) -> Vec<u8> {
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        body.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
        bytes
    }

    #[test]
    fn reads_and_refuses() {
        let good = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }\n",
            &[1.5, -2.0],
        );
        assert_eq!(
            read_f32(&good),
            Ok(NpyTensor {
                shape: vec![1, 2],
                data: vec![1.5, -2.0]
            })
        );
        let scalar = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n", &[3.0]);
        assert_eq!(read_f32(&scalar).map(|t| t.data), Ok(vec![3.0]));
        let short = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }\n", &[1.0]);
        assert!(read_f32(&short).is_err());
        let doubles = npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n",
            &[1.0, 2.0],
        );
        assert!(read_f32(&doubles).is_err());
        assert!(read_f32(b"PK\x03\x04").is_err());
    }

    #[test]
    fn writes_what_numpy_writes() -> Result<(), std::str::Utf8Error> {
        let tensor = NpyTensor {
            shape: vec![2, 3],
            data: vec![0.5, -1.0, 2.0, 3.0, 4.0, 1e-7],
        };
        let bytes = write_f32(&tensor);
        let header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        assert_eq!(&bytes[..10], b"\x93NUMPY\x01\x00\x76\x00");
        assert_eq!(&bytes[10..10 + header.len()], header);
        assert_eq!(bytes.len(), 128 + 6 * 4);
        assert_eq!(bytes[127], b'\n');
        assert_eq!(read_f32(&bytes), Ok(tensor));
        let one_axis = write_f32(&NpyTensor {
            shape: vec![3],
            data: vec![1.0, 2.0, 3.0],
        });
        assert!(std::str::from_utf8(&one_axis[10..64])?.contains("'shape': (3,)"));
        assert_eq!(read_f32(&one_axis).map(|t| t.shape), Ok(vec![3]));
        Ok(())
    }
}
