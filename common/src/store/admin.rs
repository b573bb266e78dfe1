//! Operators' queries: dashboard figures, sales reports and the stock audit.
