//! The crate's one error type: a PostgreSQL SQLSTATE, the primary message, and where in the
//! query string it points. The protocol layer turns it into an ErrorResponse as is.

/// An error a statement ends with, in PostgreSQL's terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (SQLSTATE {sqlstate})")]
pub struct SqlError {
    /// Five-character SQLSTATE, e.g. `"42601"`.
    pub sqlstate: &'static str,
    /// Primary message, worded as PostgreSQL words it.
    pub message: String,
    /// 1-based character offset into the whole query string, when known.
    pub position: Option<usize>,
    /// The CONTEXT field: where in a longer operation it failed (`COPY t, line 3`).
    pub context: Option<String>,
    /// The DETAIL field: the specifics, such as the duplicated key of a 23505.
    pub detail: Option<String>,
    /// The HINT field: what to do about it, where PostgreSQL gives one (see the `HINT_*`
    /// texts below). A thin reference, so that the error stays within 128 bytes.
    pub hint: Option<&'static &'static str>,
    /// What few errors carry besides (boxed, so that the error stays within 128 bytes):
    /// see [`ErrorExtra`].
    pub extra: Option<Box<ErrorExtra>>,
}

/// See [`SqlError::extra`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorExtra {
    /// For a 23505 raised on a shard: the storage key (a row key or a unique-index claim)
    /// that was already taken. Not sent to the client; the statement's boundary turns it into
    /// `detail` with the catalog (`index::describe_conflict`).
    pub conflict_key: Option<Vec<u8>>,
    /// The schema, table, column and constraint an integrity error is about (the
    /// ErrorResponse's `s`, `t`, `c` and `n` fields, which drivers expose and ORMs map to
    /// their models' fields).
    pub names: Option<ErrorNames>,
    /// A HINT worded for this error (`hint` holds the fixed ones).
    pub hint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorNames {
    pub schema: String,
    pub table: String,
    pub column: Option<String>,
    pub constraint: Option<String>,
}

impl SqlError {
    pub fn new(sqlstate: &'static str, message: impl Into<String>) -> SqlError {
        SqlError {
            sqlstate,
            message: message.into(),
            position: None,
            context: None,
            detail: None,
            hint: None,
            extra: None,
        }
    }

    fn extra_mut(&mut self) -> &mut ErrorExtra {
        self.extra.get_or_insert_with(Default::default)
    }

    /// A HINT made for this error (see [`SqlError::hint`] for the fixed ones).
    pub(crate) fn with_hint_text(mut self, hint: impl Into<String>) -> SqlError {
        self.extra_mut().hint = Some(hint.into());
        self
    }

    /// The HINT field, if any.
    pub fn hint_text(&self) -> Option<&str> {
        match self.hint {
            Some(h) => Some(h),
            None => self.extra.as_ref()?.hint.as_deref(),
        }
    }

    /// A 23505's taken storage key (see [`ErrorExtra::conflict_key`]).
    pub(crate) fn with_conflict_key(mut self, key: &[u8]) -> SqlError {
        self.extra_mut().conflict_key = Some(key.to_vec());
        self
    }

    pub(crate) fn conflict_key(&self) -> Option<&[u8]> {
        self.extra.as_ref()?.conflict_key.as_deref()
    }

    pub(crate) fn take_conflict_key(&mut self) -> Option<Vec<u8>> {
        self.extra.as_mut()?.conflict_key.take()
    }

    /// The names an integrity error is about (see [`ErrorExtra::names`]).
    pub fn names(&self) -> Option<&ErrorNames> {
        self.extra.as_ref()?.names.as_ref()
    }

    /// Names the table (and constraint) an integrity error is about.
    pub(crate) fn on_constraint(
        mut self,
        table: &crate::catalog::Table,
        constraint: Option<&str>,
    ) -> SqlError {
        self.extra_mut().names = Some(ErrorNames {
            schema: table.schema.clone(),
            table: table.name.clone(),
            column: None,
            constraint: constraint.map(str::to_string),
        });
        self
    }

    /// Names the column (of the table) a NOT NULL violation is about.
    pub(crate) fn on_column(mut self, table: &crate::catalog::Table, column: &str) -> SqlError {
        self = self.on_constraint(table, None);
        if let Some(names) = self.extra_mut().names.as_mut() {
            names.column = Some(column.to_string());
        }
        self
    }

    pub(crate) fn with_detail(mut self, detail: impl Into<String>) -> SqlError {
        self.detail = Some(detail.into());
        self
    }

    pub(crate) fn with_hint(mut self, hint: &'static &'static str) -> SqlError {
        self.hint = Some(hint);
        self
    }

    pub(crate) fn at(mut self, position: Option<usize>) -> SqlError {
        self.position = position;
        self
    }
}

// HINT texts, as PostgreSQL 15 words them.
/// With a 42883 for a function no overload of which takes the arguments given.
pub(crate) static HINT_NO_FUNCTION: &str =
    "No function matches the given name and argument types. You might need to add explicit type casts.";
/// With a 42883 for an operator no overload of which takes the operands given.
pub(crate) static HINT_NO_OPERATOR: &str =
    "No operator matches the given name and argument types. You might need to add explicit type casts.";
/// With a 42804 for a value of the wrong type stored into a column.
/// With a 42883 for a prefix operator no overload of which takes the operand given.
pub(crate) static HINT_NO_PREFIX_OPERATOR: &str =
    "No operator matches the given name and argument type. You might need to add an explicit type cast.";
pub(crate) static HINT_DROP_CASCADE: &str =
    "Use DROP ... CASCADE to drop the dependent objects too.";
pub(crate) static HINT_REWRITE_OR_CAST: &str = "You will need to rewrite or cast the expression.";

// SQLSTATEs used in this crate (PostgreSQL's errcodes.txt names in comments).
pub(crate) const SYNTAX_ERROR: &str = "42601"; // syntax_error
pub(crate) const FEATURE_NOT_SUPPORTED: &str = "0A000"; // feature_not_supported
pub(crate) const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003"; // numeric_value_out_of_range
pub(crate) const DIVISION_BY_ZERO: &str = "22012"; // division_by_zero
pub(crate) const INVALID_TEXT_REPRESENTATION: &str = "22P02"; // invalid_text_representation
pub(crate) const UNDEFINED_FUNCTION: &str = "42883"; // undefined_function (also operators)
pub(crate) const AMBIGUOUS_FUNCTION: &str = "42725"; // ambiguous_function
pub(crate) const DATATYPE_MISMATCH: &str = "42804"; // datatype_mismatch
pub(crate) const CANNOT_COERCE: &str = "42846"; // cannot_coerce
pub(crate) const UNDEFINED_OBJECT: &str = "42704"; // undefined_object
pub(crate) const UNDEFINED_COLUMN: &str = "42703"; // undefined_column
pub(crate) const UNDEFINED_TABLE: &str = "42P01"; // undefined_table
pub(crate) const INVALID_PARAMETER_VALUE: &str = "22023"; // invalid_parameter_value
pub(crate) const CANT_CHANGE_RUNTIME_PARAM: &str = "55P02"; // cant_change_runtime_param
pub(crate) const STATEMENT_TOO_COMPLEX: &str = "54001"; // statement_too_complex
pub(crate) const PROGRAM_LIMIT_EXCEEDED: &str = "54000"; // program_limit_exceeded
pub(crate) const INVALID_SCHEMA_NAME: &str = "3F000"; // invalid_schema_name
pub(crate) const UNDEFINED_SCHEMA: &str = "3F000"; // invalid_schema_name (DROP SCHEMA)
pub(crate) const DUPLICATE_TABLE: &str = "42P07"; // duplicate_table
pub(crate) const DUPLICATE_DATABASE: &str = "42P04"; // duplicate_database
pub(crate) const DUPLICATE_SCHEMA: &str = "42P06"; // duplicate_schema
pub(crate) const UNDEFINED_DATABASE: &str = "3D000"; // invalid_catalog_name
pub(crate) const DEPENDENT_OBJECTS_STILL_EXIST: &str = "2BP01"; // dependent_objects_still_exist
pub(crate) const INVALID_NAME: &str = "42602"; // invalid_name
pub(crate) const AMBIGUOUS_COLUMN: &str = "42702"; // ambiguous_column
pub(crate) const DUPLICATE_COLUMN: &str = "42701"; // duplicate_column
pub(crate) const GROUPING_ERROR: &str = "42803"; // grouping_error
pub(crate) const UNIQUE_VIOLATION: &str = "23505"; // unique_violation
pub(crate) const NOT_NULL_VIOLATION: &str = "23502"; // not_null_violation
pub(crate) const CHECK_VIOLATION: &str = "23514"; // check_violation
pub(crate) const CARDINALITY_VIOLATION: &str = "21000"; // cardinality_violation
pub(crate) const INVALID_TABLE_DEFINITION: &str = "42P16"; // invalid_table_definition
pub(crate) const INVALID_COLUMN_REFERENCE: &str = "42P10"; // invalid_column_reference
pub(crate) const NULL_VALUE_NOT_ALLOWED: &str = "22004"; // null_value_not_allowed
pub(crate) const QUERY_CANCELED: &str = "57014"; // query_canceled
pub(crate) const WRONG_OBJECT_TYPE: &str = "42809"; // wrong_object_type
pub(crate) const INTERNAL_ERROR: &str = "XX000"; // internal_error
pub(crate) const INVALID_ROW_COUNT: &str = "2201W"; // invalid_row_count_in_limit_clause
pub(crate) const OBJECT_IN_USE: &str = "55006"; // object_in_use
pub(crate) const UNDEFINED_PARAMETER: &str = "42P02"; // undefined_parameter
pub(crate) const PROTOCOL_VIOLATION: &str = "08P01"; // protocol_violation
pub(crate) const INVALID_DATETIME_FORMAT: &str = "22007"; // invalid_datetime_format
pub(crate) const DATETIME_FIELD_OVERFLOW: &str = "22008"; // datetime_field_overflow
pub(crate) const STRING_DATA_RIGHT_TRUNCATION: &str = "22001"; // string_data_right_truncation
