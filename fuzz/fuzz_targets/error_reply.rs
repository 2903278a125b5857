//! The error reply itself: any message (arbitrary bytes, lossily UTF-8) under any code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::{ErrorCode, ServiceError};

fuzz_target!(|data: &[u8]| {
    let Some((&first, message)) = data.split_first() else { return };
    let code = ErrorCode::ALL[usize::from(first) % ErrorCode::ALL.len()];
    shippy_fuzz::check_error(&ServiceError::new(code, String::from_utf8_lossy(message)));
});
