//! Rename propagation: an identifier renamed where it is bound (a `let`, a parameter, an
//! assignment, a function or class name) is renamed at its other occurrences in the binding's
//! scope. Only whole identifier nodes with the variable's role (never a field or property, never
//! inside strings or comments); nothing when the scope binds the name more than once in a way
//! that could shadow, or when the new name is already used there.

use tree_sitter::Node;

use super::{Edited, Side, TextEdit, is_ident_char, is_identifier_kind};
use crate::syntax::{self, Lang};

/// The edits that finish renaming the identifier the user renamed, or `None`.
pub(crate) fn predict(before: &Side<'_>, now: &Side<'_>, edited: &Edited) -> Option<Vec<TextEdit>> {
    let (start, old_end, new_end) = widen_to_identifier(before, now, edited)?;
    let old_name = before.rope.slice(start..old_end).to_string();
    let new_name = now.rope.slice(start..new_end).to_string();
    if old_name == new_name || !is_name(&old_name) || !is_name(&new_name) {
        return None;
    }
    let byte = now.rope.char_to_byte(start);
    let old_site = before.node_at(before.rope.char_to_byte(start), before.rope.char_to_byte(old_end))?;
    let new_site = now.node_at(byte, byte + new_name.len())?;
    if !is_identifier_kind(old_site.kind()) || old_site.kind() != new_site.kind() || new_site.child_count() > 0 {
        return None;
    }
    // Only a binding site says "this name is now called that"; a changed use may as well be the
    // user pointing it at another variable.
    if role(before.lang, old_site) != Role::Variable || !binds(before.lang, old_site) || !binds(now.lang, new_site) {
        return None;
    }
    let root = now.tree.root_node();
    let scope = rename_scope(now.lang, root, new_site)?;
    let mut edits = Vec::new();
    let mut bindings = 0;
    for node in occurrences(now, scope, &old_name) {
        // The function's own name, when a parameter is renamed (`def headers(self, headers)`), is
        // another binding, in the scope around.
        if role(now.lang, node) != Role::Variable || scope.node.child_by_field_name("name") == Some(node) {
            continue;
        }
        if binds(now.lang, node) {
            bindings += 1;
            // A binding in a nested function, or a second binding where a binding shadows
            // (everywhere but Python), makes "the same variable" a question for a real resolver.
            if now.lang != Lang::Python || innermost_scope(now.lang, root, node) != Some(scope.node) {
                return None;
            }
        }
        let shorthand = node.kind().contains("shorthand")
            || node.parent().is_some_and(|p| p.kind() == "shorthand_field_initializer");
        let text = if shorthand {
            // `Point { x }` / `{ x }` name a field as well as the variable: keep the field's name.
            format!("{old_name}: {new_name}")
        } else {
            new_name.clone()
        };
        let start = now.rope.byte_to_char(node.start_byte());
        edits.push(TextEdit { start, end: start + old_name.chars().count(), text });
    }
    // The new name already means something here: renaming into it could capture it.
    let collides =
        occurrences(now, scope, &new_name).any(|n| n.start_byte() != byte && role(now.lang, n) == Role::Variable);
    if edits.is_empty() || collides || bindings > 8 {
        return None;
    }
    Some(edits)
}

/// The changed chars widened to the whole identifier around them: `(start, old_end, new_end)`.
fn widen_to_identifier(before: &Side<'_>, now: &Side<'_>, edited: &Edited) -> Option<(usize, usize, usize)> {
    let mut start = edited.start;
    while start > 0 && is_ident_char(before.rope.char(start - 1)) {
        start -= 1;
    }
    let mut grow = 0;
    while edited.old_end + grow < before.rope.len_chars() && is_ident_char(before.rope.char(edited.old_end + grow)) {
        grow += 1;
    }
    let new_end = edited.new_end + grow;
    (new_end <= now.rope.len_chars()).then_some((start, edited.old_end + grow, new_end))
}

/// An identifier: word characters, not starting with a digit.
fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| is_ident_char(c) && !c.is_ascii_digit()) && chars.all(is_ident_char)
}

/// What an identifier node names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A variable, parameter, function, type or constant, as written in code.
    Variable,
    /// Something else: a field or property, a keyword argument's name, a label.
    Other,
}

fn role(lang: Lang, node: Node<'_>) -> Role {
    let kind = node.kind();
    let variable_kind = matches!(
        kind,
        "identifier"
            | "type_identifier"
            | "shorthand_property_identifier"
            | "shorthand_property_identifier_pattern"
            | "shorthand_field_identifier"
    );
    if !variable_kind {
        return Role::Other;
    }
    let Some(parent) = node.parent() else { return Role::Variable };
    let is_field = |name: &str| parent.child_by_field_name(name) == Some(node);
    let other = match (lang, parent.kind()) {
        // `obj.name`, `f(name=...)`.
        (Lang::Python, "attribute") => is_field("attribute"),
        (Lang::Python, "keyword_argument") => is_field("name"),
        // `Type::name` and `path::name` are items of another namespace; `name!` is a macro.
        (Lang::Rust, "scoped_identifier" | "scoped_type_identifier") => is_field("name"),
        (Lang::Rust, "macro_invocation") => true,
        (Lang::Rust, "field_initializer" | "field_pattern") => is_field("name") || is_field("field"),
        (Lang::JavaScript | Lang::TypeScript | Lang::Tsx, "member_expression") => is_field("property"),
        (Lang::JavaScript | Lang::TypeScript | Lang::Tsx, "labeled_statement" | "break_statement") => true,
        _ => false,
    };
    if other { Role::Other } else { Role::Variable }
}

/// Whether this identifier introduces its name: a pattern of a `let`, a parameter, an assignment's
/// target, a loop variable, or the name of a function, class or type.
fn binds(lang: Lang, node: Node<'_>) -> bool {
    holder(lang, node).is_some()
}

/// The node that binds this identifier (a `let`, a parameter, a declarator...), if it is bound here.
fn holder<'t>(lang: Lang, node: Node<'t>) -> Option<Node<'t>> {
    let mut child = node;
    let mut parent = node.parent()?;
    // Climb through destructuring patterns to what holds them.
    while wraps_pattern(lang, parent.kind()) {
        child = parent;
        parent = parent.parent()?;
    }
    let is_field = |name: &str| parent.child_by_field_name(name) == Some(child);
    let binds = match lang {
        Lang::Rust => match parent.kind() {
            "let_declaration" | "parameter" | "for_expression" | "let_condition" => is_field("pattern"),
            "closure_parameters" | "match_pattern" => true,
            "function_item" | "struct_item" | "enum_item" | "type_item" | "const_item" | "static_item"
            | "trait_item" | "union_item" => is_field("name"),
            _ => false,
        },
        Lang::Python => match parent.kind() {
            "parameters" | "lambda_parameters" | "typed_parameter" | "global_statement" | "nonlocal_statement" => true,
            "default_parameter"
            | "typed_default_parameter"
            | "function_definition"
            | "class_definition"
            | "named_expression" => is_field("name"),
            "assignment" | "augmented_assignment" | "for_statement" | "for_in_clause" => is_field("left"),
            "as_pattern_target" | "with_item" => true,
            _ => false,
        },
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => match parent.kind() {
            "variable_declarator"
            | "function_declaration"
            | "class_declaration"
            | "generator_function_declaration"
            | "interface_declaration"
            | "type_alias_declaration"
            | "enum_declaration"
            | "abstract_class_declaration"
            | "function_expression"
            | "class" => is_field("name"),
            "required_parameter" | "optional_parameter" => is_field("pattern"),
            "formal_parameters" | "catch_clause" => true,
            "arrow_function" => is_field("parameter"),
            "for_in_statement" => is_field("left"),
            _ => false,
        },
        _ => false,
    };
    binds.then_some(parent)
}

/// Nodes that hold a destructured name inside a binding.
fn wraps_pattern(lang: Lang, kind: &str) -> bool {
    match lang {
        Lang::Rust => {
            kind.ends_with("_pattern") && kind != "match_pattern" || matches!(kind, "field_pattern" | "or_pattern")
        }
        Lang::Python => matches!(
            kind,
            "pattern_list" | "tuple_pattern" | "list_pattern" | "list_splat_pattern" | "dictionary_splat_pattern"
        ),
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => {
            matches!(kind, "object_pattern" | "array_pattern" | "assignment_pattern" | "rest_pattern" | "pair_pattern")
        }
        _ => false,
    }
}

/// Nodes whose body is a scope for the names bound in it.
fn is_scope(lang: Lang, kind: &str) -> bool {
    match lang {
        Lang::Rust => matches!(kind, "function_item" | "closure_expression"),
        Lang::Python => matches!(
            kind,
            "function_definition"
                | "lambda"
                | "class_definition"
                | "list_comprehension"
                | "set_comprehension"
                | "dictionary_comprehension"
                | "generator_expression"
        ),
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => matches!(
            kind,
            "function_declaration"
                | "function_expression"
                | "function"
                | "arrow_function"
                | "method_definition"
                | "generator_function"
                | "generator_function_declaration"
                | "class_declaration"
                | "class"
        ),
        _ => false,
    }
}

/// The innermost scope around `node`, or the root when none.
fn innermost_scope<'t>(lang: Lang, root: Node<'t>, node: Node<'t>) -> Option<Node<'t>> {
    syntax::ancestors(root, node).skip(1).find(|n| is_scope(lang, n.kind())).or(Some(root))
}

/// Where a name is visible: the bytes `start..end`, in the scope `node`.
#[derive(Clone, Copy)]
struct Scope<'t> {
    node: Node<'t>,
    start: usize,
    end: usize,
}

/// Where a binding at `site` is visible: its innermost scope, except that the name of a function
/// or class belongs to the scope around it, and a `let` (Rust) or `let`/`const` (JavaScript) is
/// visible from its end to the end of its block. Methods and class attributes, reached through
/// `self.` or `this.`, are left to a real resolver: `None`.
fn rename_scope<'t>(lang: Lang, root: Node<'t>, site: Node<'t>) -> Option<Scope<'t>> {
    let mut scopes = syntax::ancestors(root, site).skip(1).filter(|n| is_scope(lang, n.kind()) || *n == root);
    let mut scope = scopes.next()?;
    if scope != root && scope.child_by_field_name("name") == Some(site) {
        if scope.parent().is_some_and(|p| p.kind() == "declaration_list") {
            return None;
        }
        scope = scopes.next()?;
    }
    if scope.kind().contains("class") {
        return None;
    }
    let whole = Scope { node: scope, start: scope.start_byte(), end: scope.end_byte() };
    let holder = holder(lang, site)?;
    let lexical = match (lang, holder.kind()) {
        (Lang::Rust, "let_declaration") => Some(holder),
        (Lang::JavaScript | Lang::TypeScript | Lang::Tsx, "variable_declarator") => {
            holder.parent().filter(|d| d.kind() == "lexical_declaration")
        }
        _ => None,
    };
    Some(match lexical.and_then(|l| Some((l, l.parent()?))) {
        Some((declaration, block)) => Scope { node: scope, start: declaration.end_byte(), end: block.end_byte() },
        None => whole,
    })
}

/// Identifier leaves spelled `name` inside `scope`, found by a text search then the tree.
fn occurrences<'a>(side: &'a Side<'_>, scope: Scope<'a>, name: &'a str) -> impl Iterator<Item = Node<'a>> + 'a {
    let start = scope.start.min(side.rope.len_bytes());
    let end = scope.end.clamp(start, side.rope.len_bytes());
    let text = side.rope.byte_slice(start..end);
    let haystack: std::borrow::Cow<'_, str> = text.into();
    let hits: Vec<usize> = haystack
        .match_indices(name)
        .filter(|(at, _)| {
            let before = haystack[..*at].chars().next_back();
            let after = haystack[at + name.len()..].chars().next();
            !before.is_some_and(is_ident_char) && !after.is_some_and(is_ident_char)
        })
        .map(|(at, _)| start + at)
        .collect();
    hits.into_iter().filter_map(move |at| {
        let node = side.tree.root_node().descendant_for_byte_range(at, at + name.len())?;
        (node.start_byte() == at && node.end_byte() == at + name.len() && is_identifier_kind(node.kind()))
            .then_some(node)
    })
}
