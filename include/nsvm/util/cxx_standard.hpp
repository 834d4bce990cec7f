// Every public C++ header of nsvm needs C++20 (concepts, std::span,
// designated initialisers, <bit>); say so at once instead of with a page of
// template errors. C programs use <nsvm/nsvm.h>, which is C99.
#pragma once

#if !defined(__cplusplus) || (__cplusplus < 202002L && !(defined(_MSVC_LANG) && _MSVC_LANG >= 202002L))
#error "nsvm's C++ headers need C++20 or later (-std=c++20); C programs use <nsvm/nsvm.h>"
#endif
