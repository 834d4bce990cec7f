// nsvm::expected: std::expected where the standard library offers it (g++ 12
// in C++23 mode), otherwise a minimal compatible subset. The fallback exists
// only because the libFuzzer build uses clang-14, whose concepts support is
// too old for libstdc++ 12's <expected>; the g++ build always uses std::.
#pragma once

#include <utility>
#include <version>

#if defined(__cpp_lib_expected)
#include <expected>
namespace nsvm {
template <class T, class E>
using expected = std::expected<T, E>;
template <class E>
using unexpected = std::unexpected<E>;
}  // namespace nsvm
#else
#include <cstdlib>
#include <type_traits>
#include <variant>
namespace nsvm {

template <class E>
class unexpected {
public:
    explicit unexpected(E e) : error_(std::move(e)) {}
    [[nodiscard]] const E& error() const& noexcept { return error_; }
    [[nodiscard]] E& error() & noexcept { return error_; }
    [[nodiscard]] E&& error() && noexcept { return std::move(error_); }

private:
    E error_;
};
template <class E>
unexpected(E) -> unexpected<E>;

template <class T, class E>
class expected {
public:
    using value_type = T;
    using error_type = E;

    expected() requires std::is_default_constructible_v<T> : v_(std::in_place_index<0>) {}
    template <class U = T>
        requires(std::is_constructible_v<T, U &&> && !std::is_same_v<std::remove_cvref_t<U>, expected>)
    expected(U&& v) : v_(std::in_place_index<0>, std::forward<U>(v)) {}
    template <class G>
    expected(const unexpected<G>& u) : v_(std::in_place_index<1>, u.error()) {}
    template <class G>
    expected(unexpected<G>&& u) : v_(std::in_place_index<1>, std::move(u).error()) {}

    [[nodiscard]] bool has_value() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }
    [[nodiscard]] T& value() & { check(); return std::get<0>(v_); }
    [[nodiscard]] const T& value() const& { check(); return std::get<0>(v_); }
    [[nodiscard]] T&& value() && { check(); return std::get<0>(std::move(v_)); }
    [[nodiscard]] T& operator*() & noexcept { return *std::get_if<0>(&v_); }
    [[nodiscard]] const T& operator*() const& noexcept { return *std::get_if<0>(&v_); }
    [[nodiscard]] T&& operator*() && noexcept { return std::move(*std::get_if<0>(&v_)); }
    [[nodiscard]] T* operator->() noexcept { return std::get_if<0>(&v_); }
    [[nodiscard]] const T* operator->() const noexcept { return std::get_if<0>(&v_); }
    [[nodiscard]] E& error() & noexcept { return *std::get_if<1>(&v_); }
    [[nodiscard]] const E& error() const& noexcept { return *std::get_if<1>(&v_); }
    [[nodiscard]] E&& error() && noexcept { return std::move(*std::get_if<1>(&v_)); }
    template <class U>
    [[nodiscard]] T value_or(U&& d) const& { return has_value() ? **this : static_cast<T>(std::forward<U>(d)); }

private:
    void check() const {
        if (!has_value()) std::abort();
    }
    std::variant<T, E> v_;
};

template <class E>
class expected<void, E> {
public:
    expected() noexcept = default;
    template <class G>
    expected(const unexpected<G>& u) : err_(u.error()), ok_(false) {}
    template <class G>
    expected(unexpected<G>&& u) : err_(std::move(u).error()), ok_(false) {}
    [[nodiscard]] bool has_value() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }
    [[nodiscard]] const E& error() const& noexcept { return err_; }
    [[nodiscard]] E& error() & noexcept { return err_; }
    void value() const {
        if (!ok_) std::abort();
    }

private:
    E err_{};
    bool ok_ = true;
};

}  // namespace nsvm
#endif
