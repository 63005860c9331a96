"""Tests for wikitune.corpus.sources.sqldump (MediaWiki mysqldump reader).

The fixtures under tests/data/sql/ describe one tiny fictional wiki twice: ``old/`` with the
MediaWiki <= 1.42 schema (categorylinks.cl_to) and ``new/`` with the 2025 schema
(categorylinks.cl_target_id -> linktarget). The new-schema ``categorylinks`` and ``page``
tables declare their columns in a different order from the old ones, so a reader that goes by
position instead of by name gets different answers. ``new/categorylinks.sql`` also holds two
rows whose cl_target_id points at non-category linktarget rows (namespace 10 and 0), which must
be ignored: with them the new schema would add (1, "アニメ作品 基礎情報") and (9, "日本のアニメ作品").
"""

from __future__ import annotations

import gzip
import logging
import shutil
from pathlib import Path

import pytest

from wikitune.corpus.sources.sqldump import (
    SQLDumpError,
    detect_schema,
    iter_category_links,
    iter_pages,
    load_category_targets,
    read_table,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "sql"
OLD = DATA / "old"
NEW = DATA / "new"

EXPECTED_LINKS = {
    (1, "日本のアニメ作品"),
    (1, "テレビ アニメ"),
    (2, "O'Neill 作品"),
    (2, "日本のアニメ作品"),
    (3, "C\\言語 関連"),
    (5, "隠しカテゴリ"),
    (6, "アニメ"),
    (7, "日本のアニメ作品"),
    (9, "テレビ アニメ"),
}

EXPECTED_PAGES = [
    (1, 0, "魔法少女 ルミナ", False),
    (2, 0, "O'Brien の冒険", False),
    (3, 0, "A\\B 計画", False),
    (4, 0, "ルミナ", True),
    (5, 10, "アニメ作品 基礎情報", False),
    (6, 14, "日本のアニメ作品", False),
    (7, 14, "テレビ アニメ", False),
    (8, 1, "魔法少女 ルミナ", False),
    (9, 0, '"引用" の謎', False),
]

HEADER = """-- MySQL dump 10.19  Distrib 10.3.39-MariaDB, for debian-linux-gnu (x86_64)
/*!40101 SET NAMES utf8mb4 */;
DROP TABLE IF EXISTS `t`;
CREATE TABLE `t` (
  `a` int(8) unsigned NOT NULL DEFAULT 0,
  `b` varbinary(255) NOT NULL DEFAULT '',
  `c` double DEFAULT NULL,
  PRIMARY KEY (`a`),
  KEY `b_c` (`b`,`c`)
) ENGINE=InnoDB DEFAULT CHARSET=binary;
LOCK TABLES `t` WRITE;
"""


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


def gzip_copy(src: Path, dst: Path) -> Path:
    with open(src, "rb") as fin, gzip.open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    return dst


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


# ------------------------------------------------------------------------------------------
# read_table on the fixtures


def test_read_table_old_categorylinks_columns_and_rows():
    name, columns, rows = read_table(OLD / "categorylinks.sql")
    assert name == "categorylinks"
    # KEY / PRIMARY KEY lines are not columns; enum('page','subcat','file') is one column.
    assert columns == [
        "cl_from", "cl_to", "cl_sortkey", "cl_timestamp", "cl_sortkey_prefix", "cl_collation", "cl_type",
    ]
    rows = list(rows)
    assert len(rows) == 9  # two INSERT statements, 5 + 4 rows
    assert rows[0] == (
        1, "テレビ_アニメ", "まほうしょうじょるみな\n魔法少女 ルミナ", "2024-03-01 12:00:00",
        "まほうしょうじょるみな", "uppercase", "page",
    )
    by_key = {(r[0], r[1]): r for r in rows}
    assert by_key[(2, "O'Neill_作品")][2] == "O'BRIEN の冒険"  # \' unescaped
    assert by_key[(3, "C\\言語_関連")][2] == "A\\B 計画"  # \\ unescaped to one backslash
    assert by_key[(9, "テレビ_アニメ")][2] == '"引用" の謎'  # \" unescaped
    assert by_key[(6, "アニメ")][6] == "subcat"


def test_read_table_value_types_null_float_int():
    name, columns, rows = read_table(OLD / "page.sql")
    assert name == "page"
    assert len(columns) == 13 and columns[:3] == ["page_id", "page_namespace", "page_title"]
    rows = {r[0]: dict(zip(columns, r)) for r in rows}
    assert sorted(rows) == list(range(1, 10))
    first = rows[1]
    assert first["page_lang"] is None  # NULL
    assert first["page_random"] == pytest.approx(0.123456789012) and isinstance(first["page_random"], float)
    assert first["page_latest"] == 1001 and isinstance(first["page_latest"], int)
    assert first["page_restrictions"] == ""
    assert rows[5]["page_random"] == pytest.approx(1.5e-05)  # exponent notation
    assert rows[3]["page_links_updated"] is None
    assert rows[2]["page_lang"] == "en"
    assert rows[4]["page_is_redirect"] == 1


def test_new_schema_columns_are_in_a_different_order():
    _, old_cl, _ = read_table(OLD / "categorylinks.sql")
    _, new_cl, _ = read_table(NEW / "categorylinks.sql")
    _, old_page, _ = read_table(OLD / "page.sql")
    _, new_page, _ = read_table(NEW / "page.sql")
    assert new_cl.index("cl_from") != old_cl.index("cl_from")
    assert new_page.index("page_title") != old_page.index("page_title")
    assert new_page.index("page_namespace") != old_page.index("page_namespace")
    assert "cl_to" not in new_cl and "cl_target_id" in new_cl


# ------------------------------------------------------------------------------------------
# Category links, both schemas


def test_detect_schema():
    assert detect_schema(read_table(OLD / "categorylinks.sql")[1]) == "cl_to"
    assert detect_schema(read_table(NEW / "categorylinks.sql")[1]) == "linktarget"
    # MediaWiki 1.43 transition tables carry both; cl_to is then complete and preferred.
    assert detect_schema(["cl_from", "cl_to", "cl_target_id"]) == "cl_to"
    with pytest.raises(SQLDumpError, match="cl_to.*cl_target_id"):
        detect_schema(read_table(OLD / "page.sql")[1])


def test_old_schema_links():
    links = list(iter_category_links(OLD / "categorylinks.sql"))
    assert set(links) == EXPECTED_LINKS
    assert len(links) == 9
    assert all(isinstance(page_id, int) for page_id, _ in links)


def test_new_schema_links_match_old_schema(caplog):
    with caplog.at_level(logging.WARNING, logger="wikitune.corpus.sources.sqldump"):
        new = list(iter_category_links(NEW / "categorylinks.sql", NEW / "linktarget.sql"))
    old = list(iter_category_links(OLD / "categorylinks.sql"))
    assert set(new) == set(old) == EXPECTED_LINKS
    assert len(new) == len(old) == 9  # the two rows to non-category targets were dropped
    # ... and reported.
    assert any("2 categorylinks rows" in r.getMessage() for r in caplog.records)


def test_load_category_targets_keeps_namespace_14_only():
    targets = load_category_targets(NEW / "linktarget.sql")
    assert targets == {
        2: "日本のアニメ作品",
        4: "テレビ アニメ",
        6: "O'Neill 作品",
        7: "C\\言語 関連",
        8: "隠しカテゴリ",
        9: "アニメ",
        10: "空のカテゴリ",
    }
    # lt_id 5 is the article (namespace 0) with the same title as category 2: not a category.
    assert 5 not in targets and 3 not in targets and 11 not in targets


def test_new_schema_without_linktarget_is_a_clear_error():
    with pytest.raises(SQLDumpError, match="--linktarget") as exc:
        iter_category_links(NEW / "categorylinks.sql")
    assert "categorylinks.sql" in str(exc.value)
    assert "cl_target_id" in str(exc.value)


def test_old_schema_ignores_linktarget_argument():
    links = set(iter_category_links(OLD / "categorylinks.sql", NEW / "linktarget.sql"))
    assert links == EXPECTED_LINKS


def test_wrong_file_as_categorylinks_or_linktarget():
    with pytest.raises(SQLDumpError, match="page_id"):  # message lists the columns found
        iter_category_links(OLD / "page.sql")
    with pytest.raises(SQLDumpError, match="lt_id"):
        iter_category_links(NEW / "categorylinks.sql", NEW / "page.sql")


def test_gzip_dumps(tmp_path):
    cl = gzip_copy(NEW / "categorylinks.sql", tmp_path / "tunewiki-20250601-categorylinks.sql.gz")
    lt = gzip_copy(NEW / "linktarget.sql", tmp_path / "tunewiki-20250601-linktarget.sql.gz")
    assert cl.read_bytes()[:2] == b"\x1f\x8b"
    assert set(iter_category_links(cl, lt)) == EXPECTED_LINKS
    old_gz = gzip_copy(OLD / "categorylinks.sql", tmp_path / "old.sql.gz")
    assert list(read_table(old_gz)[2]) == list(read_table(OLD / "categorylinks.sql")[2])


def test_compression_is_detected_by_content_not_name(tmp_path):
    # gzip data named .sql, plain text named .sql.gz
    gz_named_sql = gzip_copy(OLD / "page.sql", tmp_path / "page.sql")
    plain_named_gz = tmp_path / "page.sql.gz"
    shutil.copy(NEW / "page.sql", plain_named_gz)
    assert list(iter_pages(gz_named_sql)) == EXPECTED_PAGES
    assert list(iter_pages(plain_named_gz)) == EXPECTED_PAGES


def test_bzip2_is_refused_clearly(tmp_path):
    import bz2

    path = write(tmp_path, "x-categorylinks.sql.bz2", bz2.compress((OLD / "categorylinks.sql").read_bytes()))
    with pytest.raises(SQLDumpError, match="bzip2"):
        read_table(path)


# ------------------------------------------------------------------------------------------
# Pages


def test_iter_pages_both_schemas():
    assert list(iter_pages(OLD / "page.sql")) == EXPECTED_PAGES
    assert list(iter_pages(NEW / "page.sql")) == EXPECTED_PAGES


def test_iter_pages_namespace_filter():
    cats = list(iter_pages(NEW / "page.sql", namespaces={14}))
    assert cats == [(6, 14, "日本のアニメ作品", False), (7, 14, "テレビ アニメ", False)]
    mixed = list(iter_pages(OLD / "page.sql", namespaces=[0, 1]))
    assert [p[0] for p in mixed] == [1, 2, 3, 4, 8, 9]
    assert (4, 0, "ルミナ", True) in mixed  # redirect flag
    assert list(iter_pages(OLD / "page.sql", namespaces=())) == []


def test_iter_pages_wrong_table():
    with pytest.raises(SQLDumpError, match="page_id"):
        iter_pages(NEW / "linktarget.sql")


# ------------------------------------------------------------------------------------------
# Escaping, decoding, layout variants


def test_all_mysql_escapes(tmp_path):
    text = HEADER + (
        "INSERT INTO `t` VALUES "
        r"(1,'nul\0 q\' dq\" bs\\ nl\n cr\r tab\t ctrlz\Z bsp\b pct\% us\_ other\y',NULL),"
        r"(2,'it''s',-3.5e2),"
        r"(3,_binary 'bin',.5),"
        r"(-4,0x41E382A2,1E3);"
        "\nUNLOCK TABLES;\n"
    )
    _, columns, rows = read_table(write(tmp_path, "t.sql", text))
    assert columns == ["a", "b", "c"]
    rows = list(rows)
    assert rows[0] == (
        1,
        "nul\0 q' dq\" bs\\ nl\n cr\r tab\t ctrlz\x1a bsp\b pct\\% us\\_ othery",
        None,
    )
    assert rows[1] == (2, "it's", -350.0)
    assert rows[2] == (3, "bin", 0.5)
    assert rows[3] == (-4, "Aア", 1000.0)  # hex literal decoded as UTF-8


def test_invalid_utf8_is_replaced(tmp_path):
    # cl_sortkey is binary and may be cut in the middle of a UTF-8 sequence
    raw = HEADER.encode() + b"INSERT INTO `t` VALUES (1,'ok\xe3\x81',1),(2,'\xe3\x81\x82',2);\n"
    rows = list(read_table(write(tmp_path, "t.sql", raw))[2])
    assert rows == [(1, "ok\ufffd", 1), (2, "あ", 2)]


def test_multiline_insert_and_whitespace(tmp_path):
    text = HEADER + "INSERT INTO `t` VALUES\n  (1, 'a', 1.0),\n  (2, 'b;', NULL)\n;\nINSERT INTO `t` VALUES (3,'c',3);\n"
    rows = list(read_table(write(tmp_path, "t.sql", text))[2])
    assert rows == [(1, "a", 1.0), (2, "b;", None), (3, "c", 3)]


def test_crlf_line_endings(tmp_path):
    text = (HEADER + "INSERT INTO `t` VALUES (1,'a',2),(3,'b',4);\nUNLOCK TABLES;\n").replace("\n", "\r\n")
    rows = list(read_table(write(tmp_path, "t.sql", text))[2])
    assert rows == [(1, "a", 2), (3, "b", 4)]


def test_inserts_into_other_tables_are_skipped(tmp_path):
    text = HEADER + (
        "INSERT INTO `t` VALUES (1,'a',1);\n"
        "CREATE TABLE `other` (\n  `x` int NOT NULL\n);\n"
        "INSERT INTO `other` VALUES (99);\n"
        "INSERT INTO `t` VALUES (2,'b',2);\n"
    )
    name, _, rows = read_table(write(tmp_path, "t.sql", text))
    assert name == "t"
    assert list(rows) == [(1, "a", 1), (2, "b", 2)]


def test_explicit_column_list_must_match(tmp_path):
    ok = HEADER + "INSERT INTO `t` (`a`, `b`, `c`) VALUES (1,'a',1);\n"
    assert list(read_table(write(tmp_path, "ok.sql", ok))[2]) == [(1, "a", 1)]
    bad = HEADER + "INSERT INTO `t` (`b`, `a`, `c`) VALUES ('a',1,1);\n"
    with pytest.raises(SQLDumpError, match="line 12"):
        list(read_table(write(tmp_path, "bad.sql", bad))[2])


def test_rows_are_streamed_lazily(tmp_path):
    # The error is in the second statement: the rows of the first come out before it.
    text = HEADER + "INSERT INTO `t` VALUES (1,'a',1);\nINSERT INTO `t` VALUES (2,'b');\n"
    rows = read_table(write(tmp_path, "t.sql", text))[2]
    assert next(rows) == (1, "a", 1)
    with pytest.raises(SQLDumpError):
        next(rows)


# ------------------------------------------------------------------------------------------
# Errors


def test_truncated_insert_reports_line(tmp_path):
    text = (OLD / "categorylinks.sql").read_text(encoding="utf-8")
    cut = text.index("'2020-05-05 05:05:06'")  # inside the second INSERT
    truncated = text[:cut] + "'2020-05"
    lineno = line_of(text, "INSERT INTO `categorylinks` VALUES (5,")
    path = write(tmp_path, "categorylinks.sql", truncated)
    links = iter_category_links(path)
    got = []
    with pytest.raises(SQLDumpError, match=rf"line {lineno}\b.*truncated") as exc:
        for link in links:
            got.append(link)
    assert "categorylinks.sql" in str(exc.value)
    assert len(got) == 5 + 2  # the complete rows before the cut were delivered


def test_truncated_after_complete_row_without_semicolon(tmp_path):
    text = HEADER + "INSERT INTO `t` VALUES (1,'a',1),(2,'b',2)"
    with pytest.raises(SQLDumpError, match=r"line 12\b.*truncated"):
        list(read_table(write(tmp_path, "t.sql", text))[2])


def test_truncated_gzip(tmp_path):
    gz = gzip.compress((OLD / "categorylinks.sql").read_bytes())
    path = write(tmp_path, "categorylinks.sql.gz", gz[: len(gz) - 200])
    with pytest.raises(SQLDumpError, match="line"):
        list(iter_category_links(path))


def test_garbled_insert_reports_line_and_column(tmp_path):
    text = HEADER + "INSERT INTO `t` VALUES (1,'a',1);\nINSERT INTO `t` VALUES (2,'O'Brien',2);\n"
    with pytest.raises(SQLDumpError, match=r"line 13, column 30: garbled") as exc:
        list(read_table(write(tmp_path, "t.sql", text))[2])
    assert "Brien" in str(exc.value)


def test_garbage_between_rows(tmp_path):
    text = HEADER + "INSERT INTO `t` VALUES (1,'a',1)x(2,'b',2);\n"
    with pytest.raises(SQLDumpError, match=r"line 12\b.*garbled"):
        list(read_table(write(tmp_path, "t.sql", text))[2])


def test_missing_create_table(tmp_path):
    text = (OLD / "categorylinks.sql").read_text(encoding="utf-8")
    start = text.index("CREATE TABLE")
    end = text.index(";", start) + 1
    stripped = text[:start] + text[end:]
    path = write(tmp_path, "categorylinks.sql", stripped)
    # raised by the call itself, before any iteration
    with pytest.raises(SQLDumpError, match=rf"line {line_of(stripped, 'INSERT INTO')}\b.*CREATE TABLE"):
        read_table(path)
    with pytest.raises(SQLDumpError, match="CREATE TABLE"):
        iter_category_links(path)


def test_not_a_sql_dump(tmp_path):
    path = write(tmp_path, "pages-articles.xml", "<mediawiki>\n<page><title>x</title></page>\n</mediawiki>\n")
    with pytest.raises(SQLDumpError, match="no CREATE TABLE"):
        read_table(path)


def test_unterminated_create_table(tmp_path):
    path = write(tmp_path, "t.sql", HEADER.split(") ENGINE")[0])
    with pytest.raises(SQLDumpError, match="CREATE TABLE"):
        read_table(path)


def test_arity_mismatch(tmp_path):
    text = HEADER + "INSERT INTO `t` VALUES (1,'a',1),(2,'b',2,'extra');\n"
    with pytest.raises(SQLDumpError) as exc:
        list(read_table(write(tmp_path, "t.sql", text))[2])
    msg = str(exc.value)
    assert "line 12" in msg
    assert "row 2" in msg and "4 values" in msg and "3 columns" in msg
    fewer = HEADER + "INSERT INTO `t` VALUES (1,'a');\n"
    with pytest.raises(SQLDumpError, match="2 values but .* 3 columns"):
        list(read_table(write(tmp_path, "fewer.sql", fewer))[2])


def test_arity_mismatch_against_real_schema(tmp_path):
    # an old-schema row (7 values) under the 2025 header (7 columns) parses, but 6 values do not
    text = (NEW / "categorylinks.sql").read_text(encoding="utf-8")
    lineno = line_of(text, "INSERT INTO `categorylinks` VALUES ('アニメ作品")
    bad = text.replace("('アニメ作品 基礎情報',5,'2021-01-15 00:00:00',8,'','page',1)", "(5,8,'','page',1,2)")
    with pytest.raises(SQLDumpError, match=rf"line {lineno}: row 1 .* 6 values"):
        list(iter_category_links(write(tmp_path, "cl.sql", bad), NEW / "linktarget.sql"))


# ------------------------------------------------------------------------------------------
# Size


def test_twenty_thousand_rows_in_one_line(tmp_path):
    n = 20_000
    rows = ",".join(
        f"({i},'カテゴリ_{i % 97}','ソート\\n{i}','2024-01-01 00:00:00','','uppercase','{'subcat' if i % 5 == 0 else 'page'}')"
        for i in range(1, n + 1)
    )
    header = (OLD / "categorylinks.sql").read_text(encoding="utf-8").split("INSERT INTO")[0]
    text = header + "INSERT INTO `categorylinks` VALUES " + rows + ";\nUNLOCK TABLES;\n"
    path = write(tmp_path, "big-categorylinks.sql", text)
    assert text.count("\nINSERT") == 1
    _, _, all_rows = read_table(path)
    count = total = 0
    last = None
    for row in all_rows:
        count += 1
        total += row[0]
        last = row
    assert count == n
    assert total == n * (n + 1) // 2
    assert last == (n, f"カテゴリ_{n % 97}", f"ソート\n{n}", "2024-01-01 00:00:00", "", "uppercase", "subcat")
    links = list(iter_category_links(gzip_copy(path, tmp_path / "big.sql.gz")))
    assert len(links) == n
    assert links[41] == (42, f"カテゴリ {42 % 97}")
    assert len({c for _, c in links}) == 97
