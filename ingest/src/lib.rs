//! Documents in: format sniffing and parsing, passages with locators, the catalog, the tantivy
//! index and bulk ingestion. Knows nothing of models.
