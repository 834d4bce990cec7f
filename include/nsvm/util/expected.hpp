// nsvm::expected: the project's own minimal expected<T, E>, ALWAYS, whatever
// the standard library offers. The public headers are compiled by every
// consumer (C++20 or C++23, g++ or clang): were this an alias of
// std::expected when <expected> exists and a home-made class otherwise, a
// harness built as C++20 (or with clang-14, whose concepts support cannot
// parse libstdc++ 12's <expected>) would see a different type with a
// different layout under the same name as libnsvm -- an ODR violation that
// links cleanly and crashes at run time. One type in every mode is the fix.
//
// The subset offered: has_value, operator bool, value, *, ->, error,
// value_or, == with a value, and nsvm::unexpected to build an error. value() on an error
// aborts (no exceptions: the engine's paths are noexcept).
#pragma once

#include "nsvm/util/cxx_standard.hpp"

#include <cstdlib>
#include <type_traits>
#include <utility>
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

    // As std::expected: equal to a value when it holds an equal value
    // (tests compare results with EXPECT_EQ).
    template <class U>
        requires(!std::is_same_v<std::remove_cvref_t<U>, expected>)
    [[nodiscard]] friend bool operator==(const expected& x, const U& v) {
        return x.has_value() && *x == v;
    }

private:
    void check() const {
        if (!has_value()) std::abort();
    }
    std::variant<T, E> v_;
};

template <class E>
class expected<void, E> {
public:
    using value_type = void;
    using error_type = E;

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
