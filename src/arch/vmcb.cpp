#include "nsvm/arch/vmcb_layout_asserts.hpp"
