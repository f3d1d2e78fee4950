//! The prompt format shared by training and the app: a question is read after the document as
//! `QUESTION_PREFIX + question + ANSWER_PREFIX`, and the answer is generated after it, ending at
//! the first newline. Training's synthetic tasks (pass keys, facts, recall) use exactly this.

/// Read after the document text, before the question.
pub const QUESTION_PREFIX: &str = "\n\nQuestion: ";
/// Read after the question; the answer follows it.
pub const ANSWER_PREFIX: &str = "\nAnswer:";
/// Ends a generated answer.
pub const ANSWER_END: char = '\n';

/// The text read after a document to ask `question`.
pub fn question_prompt(question: &str) -> String {
    format!("{QUESTION_PREFIX}{}{ANSWER_PREFIX}", question.trim())
}
