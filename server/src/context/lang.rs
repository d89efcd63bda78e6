//! Per-language tables of tree-sitter node kinds: what is a comment, a string, a scope with a
//! header, an import, a definition, and a container of definitions.
//!
//! Plain kind tables rather than compiled `.scm` queries: a lookup is a few string compares, and
//! compiling nine query sets would cost milliseconds at start-up for no gain at this grain.

use std::sync::OnceLock;

use crate::syntax::Lang;

/// Field ids of one grammar. Looking a field up by name scans the grammar's field names, which
/// costs more than the lookup itself; definition scans do it thousands of times.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fields {
    pub name: u16,
    pub declarator: u16,
    pub type_: u16,
}

/// The field ids of `lang`'s grammar, looked up once per process.
pub(crate) fn fields(lang: Lang) -> Fields {
    static FIELDS: OnceLock<Vec<Fields>> = OnceLock::new();
    let all = FIELDS.get_or_init(|| {
        Lang::ALL
            .iter()
            .map(|lang| {
                let grammar = lang.grammar();
                let id = |name: &str| grammar.field_id_for_name(name).map_or(0, |id| id.get());
                Fields { name: id("name"), declarator: id("declarator"), type_: id("type") }
            })
            .collect()
    });
    Lang::ALL.iter().position(|l| *l == lang).and_then(|i| all.get(i).copied()).unwrap_or_default()
}

/// A node's child by field id; id 0 (a field the grammar lacks) finds nothing.
pub(crate) fn field<'t>(node: tree_sitter::Node<'t>, id: u16) -> Option<tree_sitter::Node<'t>> {
    if id == 0 { None } else { node.child_by_field_id(id) }
}

/// The node kinds `context` and `postprocess` care about, for one language.
pub(crate) struct Spec {
    /// Comments, where automatic completion is off.
    pub comments: &'static [&'static str],
    /// String-like literals (one token even across lines).
    pub strings: &'static [&'static str],
    /// Code islands inside strings (`${..}`, f-string `{..}`): the cursor there is in code.
    pub interpolations: &'static [&'static str],
    /// Scopes whose header is kept when the window starts below it.
    pub scopes: &'static [&'static str],
    /// Top-level import-like statements, kept as a snippet.
    pub imports: &'static [&'static str],
    /// Named definitions whose signature may be given when the window refers to them.
    pub definitions: &'static [&'static str],
    /// Nodes whose children may be definitions (files, class bodies, namespaces, wrappers).
    pub containers: &'static [&'static str],
    /// How a line comment starts, for the `... ` line that marks elided code.
    pub line_comment: &'static str,
}

impl Spec {
    pub fn is_comment(&self, kind: &str) -> bool {
        self.comments.contains(&kind)
    }

    pub fn is_string(&self, kind: &str) -> bool {
        self.strings.contains(&kind)
    }

    /// Comments and strings: single tokens that may span lines.
    pub fn is_atomic(&self, kind: &str) -> bool {
        self.is_comment(kind) || self.is_string(kind)
    }
}

pub(crate) fn spec(lang: Lang) -> &'static Spec {
    match lang {
        Lang::Rust => &RUST,
        Lang::Python => &PYTHON,
        Lang::JavaScript => &JAVASCRIPT,
        Lang::TypeScript | Lang::Tsx => &TYPESCRIPT,
        Lang::Go => &GO,
        Lang::C => &C,
        Lang::Cpp => &CPP,
        Lang::Java => &JAVA,
    }
}

/// Whether a node of this kind holds a list of statements or items, so that a child starting a
/// line is a clean place to cut. The grammars agree on a few naming patterns.
pub(crate) fn is_statement_list(kind: &str) -> bool {
    kind.ends_with("block")
        || kind.ends_with("body")
        || kind.ends_with("_list")
        || matches!(
            kind,
            "source_file"
                | "module"
                | "program"
                | "translation_unit"
                | "compound_statement"
                | "switch_body"
                | "expression_case"
                | "default_case"
                | "type_case"
                | "communication_case"
                | "case_statement"
                | "switch_block_statement_group"
                | "switch_case"
                | "switch_default"
                | "preproc_ifdef"
                | "preproc_if"
                | "preproc_else"
        )
}

static RUST: Spec = Spec {
    comments: &["line_comment", "block_comment"],
    strings: &["string_literal", "raw_string_literal", "char_literal"],
    interpolations: &[],
    scopes: &["function_item", "impl_item", "trait_item", "mod_item", "closure_expression", "macro_definition"],
    imports: &["use_declaration", "extern_crate_declaration"],
    definitions: &[
        "function_item",
        "function_signature_item",
        "struct_item",
        "enum_item",
        "union_item",
        "trait_item",
        "type_item",
        "const_item",
        "static_item",
        "macro_definition",
    ],
    containers: &["source_file", "impl_item", "trait_item", "mod_item", "declaration_list"],
    line_comment: "//",
};

static PYTHON: Spec = Spec {
    comments: &["comment"],
    strings: &["string", "concatenated_string"],
    interpolations: &["interpolation"],
    scopes: &["function_definition", "class_definition"],
    imports: &["import_statement", "import_from_statement", "future_import_statement"],
    definitions: &["function_definition", "class_definition"],
    containers: &["module", "class_definition", "decorated_definition", "block"],
    line_comment: "#",
};

static JAVASCRIPT: Spec = Spec {
    comments: &["comment"],
    strings: &["string", "template_string", "regex"],
    interpolations: &["template_substitution"],
    scopes: &[
        "function_declaration",
        "generator_function_declaration",
        "function_expression",
        "function",
        "generator_function",
        "arrow_function",
        "method_definition",
        "class_declaration",
        "class",
    ],
    imports: &["import_statement"],
    definitions: &[
        "function_declaration",
        "generator_function_declaration",
        "class_declaration",
        "method_definition",
        "lexical_declaration",
        "variable_declaration",
    ],
    containers: &["program", "export_statement", "class_declaration", "class_body"],
    line_comment: "//",
};

static TYPESCRIPT: Spec = Spec {
    comments: &["comment"],
    strings: &["string", "template_string", "regex"],
    interpolations: &["template_substitution"],
    scopes: &[
        "function_declaration",
        "generator_function_declaration",
        "function_expression",
        "function",
        "generator_function",
        "arrow_function",
        "method_definition",
        "class_declaration",
        "abstract_class_declaration",
        "class",
        "interface_declaration",
        "internal_module",
        "module",
    ],
    imports: &["import_statement"],
    definitions: &[
        "function_declaration",
        "generator_function_declaration",
        "function_signature",
        "class_declaration",
        "abstract_class_declaration",
        "method_definition",
        "method_signature",
        "abstract_method_signature",
        "interface_declaration",
        "type_alias_declaration",
        "enum_declaration",
        "lexical_declaration",
        "variable_declaration",
    ],
    containers: &[
        "program",
        "export_statement",
        "class_declaration",
        "abstract_class_declaration",
        "class_body",
        "internal_module",
        "module",
        "statement_block",
        "ambient_declaration",
    ],
    line_comment: "//",
};

static GO: Spec = Spec {
    comments: &["comment"],
    strings: &["interpreted_string_literal", "raw_string_literal", "rune_literal"],
    interpolations: &[],
    scopes: &["function_declaration", "method_declaration", "func_literal"],
    imports: &["package_clause", "import_declaration"],
    definitions: &["function_declaration", "method_declaration", "type_declaration"],
    containers: &["source_file"],
    line_comment: "//",
};

static C: Spec = Spec {
    comments: &["comment"],
    strings: &["string_literal", "char_literal", "system_lib_string", "concatenated_string"],
    interpolations: &[],
    scopes: &["function_definition", "struct_specifier", "union_specifier", "enum_specifier"],
    imports: &["preproc_include"],
    definitions: &[
        "function_definition",
        "declaration",
        "struct_specifier",
        "union_specifier",
        "enum_specifier",
        "type_definition",
        "preproc_def",
        "preproc_function_def",
    ],
    containers: &["translation_unit", "preproc_ifdef", "preproc_if", "preproc_else", "linkage_specification"],
    line_comment: "//",
};

static CPP: Spec = Spec {
    comments: &["comment"],
    strings: &["string_literal", "char_literal", "system_lib_string", "raw_string_literal", "concatenated_string"],
    interpolations: &[],
    scopes: &[
        "function_definition",
        "struct_specifier",
        "union_specifier",
        "enum_specifier",
        "class_specifier",
        "namespace_definition",
        "lambda_expression",
    ],
    imports: &["preproc_include", "using_declaration", "namespace_alias_definition"],
    definitions: &[
        "function_definition",
        "declaration",
        "field_declaration",
        "struct_specifier",
        "union_specifier",
        "enum_specifier",
        "class_specifier",
        "type_definition",
        "alias_declaration",
        "preproc_def",
        "preproc_function_def",
        "template_declaration",
    ],
    containers: &[
        "translation_unit",
        "preproc_ifdef",
        "preproc_if",
        "preproc_else",
        "linkage_specification",
        "namespace_definition",
        "declaration_list",
        "template_declaration",
        "class_specifier",
        "struct_specifier",
        "field_declaration_list",
        "access_specifier",
    ],
    line_comment: "//",
};

static JAVA: Spec = Spec {
    comments: &["line_comment", "block_comment"],
    strings: &["string_literal", "character_literal", "text_block"],
    interpolations: &[],
    scopes: &[
        "class_declaration",
        "interface_declaration",
        "enum_declaration",
        "record_declaration",
        "method_declaration",
        "constructor_declaration",
        "lambda_expression",
    ],
    imports: &["package_declaration", "import_declaration"],
    definitions: &[
        "class_declaration",
        "interface_declaration",
        "enum_declaration",
        "record_declaration",
        "method_declaration",
        "constructor_declaration",
        "field_declaration",
    ],
    containers: &[
        "program",
        "class_declaration",
        "interface_declaration",
        "enum_declaration",
        "record_declaration",
        "class_body",
        "interface_body",
        "enum_body",
        "enum_body_declarations",
    ],
    line_comment: "//",
};
