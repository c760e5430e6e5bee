//! Fields: what conditions and outputs can read from an event.
//!
//! [`catalogue`](catalogue()) is the data (every field's name, type, argument and the events
//! that provide it), `extract` reads a field's value from an event, and `transform` applies the
//! transformers (`tolower(...)`, `b64(...)`, ...) to a value. The evaluator's per-event context
//! and its fast accessors are in `eval`.

mod catalogue;
mod extract;
mod transform;

pub use catalogue::{
    ArgKind, FieldDef, FieldId, FieldType, Provides, UNPROVIDED_FIELDS, catalogue, is_unprovided,
};
pub(crate) use catalogue::{lookup, name_of};
pub(crate) use extract::{
    EVT_DIR, FieldArg, FieldRef, Val, ancestor, any_ancestor, basename, decode_caps, dirname,
    extract, extract_for_output, has_named_caps, is_file_like, split_image, typechar,
};
pub(crate) use transform::apply_transformers;
