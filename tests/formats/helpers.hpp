// Shared by the formats tests: fixture loading and diagnostic searches.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "nsvm/formats/vmcb_io.hpp"

namespace nsvm::formats::test {

inline std::string load(const std::string& rel) {
    std::ifstream f(std::string(NSVM_SOURCE_DIR) + "/" + rel, std::ios::binary);
    EXPECT_TRUE(f.good()) << rel;
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

inline std::string fixture(const std::string& name) { return load("tests/formats/fixtures/" + name); }

/// The warning whose printed form contains `needle`, or nullptr.
inline const Diagnostic* find_warning(const ReadResult& r, const std::string& needle) {
    for (const auto& w : r.warnings) {
        if (to_string(w).find(needle) != std::string::npos) return &w;
    }
    return nullptr;
}

/// The error reading `text` as `f` gives (a test failure if it reads).
inline Diagnostic read_error(const std::string& text, Format f, const char* name = "bad.json") {
    auto r = read_vmcb(text, f, name);
    EXPECT_FALSE(r.has_value()) << text.substr(0, 200);
    return r ? Diagnostic{} : r.error();
}

inline bool contains(std::string_view hay, std::string_view needle) {
    return hay.find(needle) != std::string_view::npos;
}

inline std::string all_warnings(const ReadResult& r) {
    std::string s;
    for (const auto& w : r.warnings) s += to_string(w) + "\n";
    return s;
}

}  // namespace nsvm::formats::test
