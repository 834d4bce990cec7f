// Recorded field writes for the repair.
#include "editor.hpp"

#include <string>

namespace nsvm::repair::detail {

bool Editor::set(arch::FieldId id, std::uint64_t value) {
    const std::uint64_t old = vmcb_.get(id);
    vmcb_.set(id, value);
    const std::uint64_t now = vmcb_.get(id);  // as stored: truncated to the field's width
    if (now == old) return false;
    changes_.push_back(Change{std::string(arch::info(id).name), old, now, std::string(check_id_)});
    return true;
}

bool Editor::set_intercept(unsigned bit) {
    const unsigned word = bit / 32;
    const std::uint32_t old = vmcb_.intercept_word(word);
    vmcb_.set_intercept(bit);
    const std::uint32_t now = vmcb_.intercept_word(word);
    if (now == old) return false;
    changes_.push_back(
        Change{"control.intercepts[" + std::to_string(word) + "]", old, now, std::string(check_id_)});
    return true;
}

}  // namespace nsvm::repair::detail
