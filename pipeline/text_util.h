#pragma once
// Small text and JSON helpers shared by the pipeline: "did you mean"
// suggestions for spec errors, and the canonical JSON form used for hashing
// and for every JSON file qpipe writes.
//
// Canonical JSON: object keys sorted bytewise (nlohmann::json's std::map),
// no insignificant whitespace, numbers as nlohmann prints them: integers
// exactly, floating point in the shortest form that reads back to the same
// double (e.g. 0.8719, 1.0, 1e-05); NaN/Inf become null; invalid UTF-8 is
// replaced by U+FFFD. The pretty form (reports) uses the same rules with a
// two-space indent and a final newline.

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace qpipe {

// Edit distance: insert, delete, substitute, swap two neighbours (case-sensitive).
std::size_t edit_distance(std::string_view a, std::string_view b);

// The closest candidate within a distance that makes a typo plausible
// (<= max(2, len/3), or a case-insensitive match), or "" when none is.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "".
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

// "'a', 'b', 'c'" — for "expected one of ..." messages.
std::string quoted_list(const std::vector<std::string>& items);

std::string canonical_json(const nlohmann::json& j);
std::string pretty_json(const nlohmann::json& j);

// Parses JSON text; throws PtqError(kInput) naming `what` (usually a path)
// with the parser's byte offset.
nlohmann::json parse_json(std::string_view text, std::string_view what);
// Reads and parses a JSON file.
nlohmann::json read_json_file(const std::string& path);

}  // namespace qpipe
