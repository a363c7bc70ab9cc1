//! File-type classification recorded as `file_type` in stored stamp metadata. Pure.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Document,
    Archive,
    Image,
    Media,
    Other,
}

impl FileType {
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::Document => "document",
            FileType::Archive => "archive",
            FileType::Image => "image",
            FileType::Media => "media",
            FileType::Other => "other",
        }
    }
}

const DOCUMENT_EXTENSIONS: &[&str] = &[
    "pdf", "doc", "docx", "txt", "md", "py", "js", "json", "yaml",
    "yml", // the original's list
    "rs", "ts", "tsx", "jsx", "go", "java", "kt", "c", "h", "cpp", "hpp", "cs", "rb", "php", "sh",
    "toml", "ini", "cfg", "xml", "html", "htm", "css", "sql", "csv", "rst", "tex", "odt", "rtf",
];
const ARCHIVE_EXTENSIONS: &[&str] = &["zip", "tar", "gz", "rar", "7z", "tgz", "bz2", "xz", "zst"];
const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "gif", "webp", "svg", "bmp", "tiff"];
const MEDIA_EXTENSIONS: &[&str] = &["mp3", "wav", "ogg", "flac", "mp4", "mkv", "webm", "mov"];

/// Classify by the file path's extension first, then by the MIME content type.
pub fn classify(file_path: Option<&str>, content_type: Option<&str>) -> FileType {
    if let Some(ext) = file_path
        .and_then(|p| p.rsplit(['/', '\\']).next())
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase())
    {
        let ext = ext.as_str();
        if DOCUMENT_EXTENSIONS.contains(&ext) {
            return FileType::Document;
        }
        if ARCHIVE_EXTENSIONS.contains(&ext) {
            return FileType::Archive;
        }
        if IMAGE_EXTENSIONS.contains(&ext) {
            return FileType::Image;
        }
        if MEDIA_EXTENSIONS.contains(&ext) {
            return FileType::Media;
        }
    }
    match content_type.map(|c| c.trim().to_ascii_lowercase()) {
        Some(c) if c.starts_with("text/") => FileType::Document,
        Some(c)
            if c.contains("pdf")
                || c.contains("json")
                || c.contains("yaml")
                || c.contains("msword")
                || c.contains("officedocument")
                || c.contains("javascript")
                || c.contains("xml") =>
        {
            FileType::Document
        }
        Some(c)
            if c.contains("zip")
                || c.contains("tar")
                || c.contains("gzip")
                || c.contains("rar")
                || c.contains("7z")
                || c.contains("compressed") =>
        {
            FileType::Archive
        }
        Some(c) if c.starts_with("image/") => FileType::Image,
        Some(c) if c.starts_with("audio/") || c.starts_with("video/") => FileType::Media,
        _ => FileType::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_extension_then_content_type() {
        let cases: &[(Option<&str>, Option<&str>, FileType)] = &[
            (Some("a/b/README.md"), None, FileType::Document),
            (Some("x.PDF"), None, FileType::Document),
            (Some("src/main.rs"), None, FileType::Document),
            (Some("bundle.tar.gz"), None, FileType::Archive),
            (Some("a.7z"), None, FileType::Archive),
            (Some("photo.jpeg"), None, FileType::Image),
            (Some("noext"), Some("application/zip"), FileType::Archive),
            (None, Some("text/markdown"), FileType::Document),
            (None, Some("application/pdf"), FileType::Document),
            (None, Some("image/png"), FileType::Image),
            (None, None, FileType::Other),
            (Some("weird.bin"), None, FileType::Other),
        ];
        for (path, ct, expected) in cases {
            assert_eq!(classify(*path, *ct), *expected, "{path:?} {ct:?}");
        }
    }
}
