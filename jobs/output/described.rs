//! The descriptions a published table carries in its own Parquet file, so a reader that never
//! saw our docs still finds them:
//!
//! - each column's definition as the Arrow field metadata `comment`, the key Spark and Hive use
//!   for a column comment (pyarrow shows it as `field.metadata[b"comment"]`);
//! - the table's description as the file's key-value metadata `comment`.
//!
//! The texts come from one place per table: a SQL model's header, or the stage schema that
//! builds the table with [`field`] and [`schema`]. The manifest, the data dictionary and the
//! catalog scripts in `_catalog/` read them back from there.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// The metadata key of a column's and of a table's description.
pub const COMMENT: &str = "comment";

/// A column with its definition.
pub fn field(name: impl Into<String>, data_type: DataType, nullable: bool, comment: &str) -> Field {
    Field::new(name, data_type, nullable).with_metadata(metadata(comment))
}

/// A table's schema with its description.
pub fn schema(description: &str, fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new_with_metadata(fields, metadata(description)))
}

/// The metadata map holding one description.
pub fn metadata(comment: &str) -> HashMap<String, String> {
    HashMap::from([(COMMENT.to_string(), comment.to_string())])
}

/// A column's or a table's description, when it has one.
pub fn comment(metadata: &HashMap<String, String>) -> Option<&str> {
    metadata
        .get(COMMENT)
        .map(String::as_str)
        .filter(|c| !c.is_empty())
}
