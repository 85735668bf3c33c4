//! Rolling out a new bundle safely: a candidate bundle is compiled like the
//! live one and never decides. [`shadow`] evaluates it in the shadow of
//! admission traffic on threads that [`background`] keeps out of
//! admission's way; [`candidate_audit`] tracks what it would judge
//! differently on what already runs; [`promote`] makes it live.

pub mod background;
pub mod candidate_audit;
pub mod promote;
pub mod shadow;
