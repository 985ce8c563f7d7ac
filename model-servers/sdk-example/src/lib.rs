//! An epsilon-greedy router written on `seldon-serving` (work in progress).
