//! Instructions for AI code actions. The server picks the code and the target region; these
//! say what to do with it. `PromptFormat::render` turns a `Task::Instruct` into a chat prompt
//! (ChatML) for instruction-following models, or a commented instruction for plain ones.
//!
//! Completing a body and writing a test do not need an instruction: the server builds a
//! fill-in document (the body or the test scaffold with the cursor inside) and asks for a plain
//! completion, which every model can do.

use crate::request::Task;

/// The system message shared by all actions.
fn system(language: &str) -> String {
    let language = display_language(language);
    format!(
        "You are an expert {language} programmer. You answer with exactly what is asked, \
         without explanations or greetings."
    )
}

/// A doc comment's text for the definition `name`. The server formats the comment itself, so
/// the model only writes prose.
pub fn document(language: &str, name: &str) -> Task {
    Task::Instruct {
        system: system(language),
        instruction: format!(
            "Write the documentation for `{name}` above: one or two plain sentences that say what it does \
             and what it returns, starting with a verb (for example \"Returns the number of ...\"). \
             Answer with the sentences only: no code, no comment markers, and do not repeat this request."
        ),
    }
}

/// The corrected code for a region with a diagnostic.
pub fn fix(language: &str, message: &str, line: u32) -> Task {
    Task::Instruct {
        system: system(language),
        instruction: format!(
            "The code above has this problem on line {line} of the snippet: {message}\n\
             Rewrite the whole snippet with the problem fixed, changing as little as possible. \
             Answer with the corrected code in one fenced code block."
        ),
    }
}

/// The selected code rewritten by the user's instruction.
pub fn rewrite(language: &str, instruction: &str) -> Task {
    Task::Instruct {
        system: system(language),
        instruction: format!(
            "Rewrite the code above as follows: {instruction}\n\
             Keep its behaviour unless told otherwise. Answer with the rewritten code in one fenced code block."
        ),
    }
}

/// The code above as the user will edit it next, after changing one line from `before` to
/// `after` (next-edit prediction): the same change where the rest of the code now needs it.
pub fn next_edit(language: &str, before: &str, after: &str) -> Task {
    Task::Instruct {
        system: system(language),
        instruction: format!(
            "I just changed this line of the code above:\n```\n{before}\n```\ninto:\n```\n{after}\n```\n\
             Make the follow-up edits my change requires in the code above, the way I would make them next: \
             the same change on the other lines that need it (for example the other calls of a function \
             whose parameters changed, or the other uses of a renamed name). Change nothing else, and \
             keep my changed line as it is. If nothing else needs to change, answer with the code unchanged. \
             Answer with the whole code in one fenced code block."
        ),
    }
}

/// A unit test for `name`, in the language's usual test style.
pub fn test(language: &str, name: &str) -> Task {
    let style = match language {
        "rust" => format!("a `#[test]` function that calls `{name}` and checks its result with `assert_eq!`"),
        "python" => {
            format!("a pytest function named `test_...` that calls `{name}` and checks its result with `assert`")
        }
        "javascript" | "javascriptreact" | "typescript" | "typescriptreact" => {
            format!("a `test(...)` call that calls `{name}` and checks its result with `expect`")
        }
        _ => format!("a test function that calls `{name}` and checks its result"),
    };
    Task::Instruct {
        system: system(language),
        instruction: format!(
            "Write one unit test for `{name}` above: {style}. Answer with the test code only, in one fenced code block."
        ),
    }
}

/// What a rewrite does when the user gave no instruction (clients that cannot ask for one).
pub const DEFAULT_REWRITE: &str = "make it clearer and more idiomatic";

fn display_language(language: &str) -> &str {
    match language {
        "rust" => "Rust",
        "python" => "Python",
        "javascript" | "javascriptreact" => "JavaScript",
        "typescript" | "typescriptreact" => "TypeScript",
        "go" => "Go",
        "c" => "C",
        "cpp" => "C++",
        "java" => "Java",
        "" => "software",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_name_the_language_and_carry_the_details() {
        let Task::Instruct { system, instruction } = fix("rust", "mismatched types", 3) else {
            unreachable!("fix is an instruction")
        };
        assert!(system.contains("Rust"));
        assert!(instruction.contains("mismatched types") && instruction.contains("line 3"));
        let Task::Instruct { instruction, .. } = rewrite("python", "use a list comprehension") else {
            unreachable!("rewrite is an instruction")
        };
        assert!(instruction.contains("use a list comprehension"));
        let Task::Instruct { instruction, .. } = document("go", "Parse") else {
            unreachable!("document is an instruction")
        };
        assert!(instruction.contains("`Parse`"));
    }
}
