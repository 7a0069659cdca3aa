//! Paging of the dashboard's lists: which page a query asks for, and the links around it. Pure.

/// Rows on a page unless `?per=` says otherwise.
pub const PER_PAGE: usize = 50;
pub const MAX_PER_PAGE: usize = 200;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paging {
    /// 1-based.
    pub page: usize,
    pub per: usize,
    pub total: usize,
}

impl Paging {
    /// From the query's `page` and `per`; anything unparsable, zero or too large is the default
    /// or the bound, never an error (a hand-edited link still shows a page).
    pub fn from_query(page: Option<&str>, per: Option<&str>) -> Self {
        let page = page.and_then(|p| p.trim().parse::<usize>().ok()).filter(|p| *p > 0).unwrap_or(1);
        let per = per.and_then(|p| p.trim().parse::<usize>().ok()).filter(|p| *p > 0).unwrap_or(PER_PAGE).min(MAX_PER_PAGE);
        Paging { page, per, total: 0 }
    }

    /// The 0-based index of the page's first row.
    pub fn start(&self) -> usize {
        (self.page - 1).saturating_mul(self.per)
    }

    pub fn with_total(mut self, total: usize) -> Self {
        self.total = total;
        self
    }

    pub fn pages(&self) -> usize {
        self.total.div_ceil(self.per).max(1)
    }

    pub fn prev(&self) -> Option<usize> {
        (self.page > 1).then(|| (self.page - 1).min(self.pages()))
    }

    pub fn next(&self) -> Option<usize> {
        (self.page < self.pages()).then_some(self.page + 1)
    }

    /// "Showing 51–100 of 10000", or that nothing matched.
    pub fn summary(&self) -> String {
        if self.total == 0 || self.start() >= self.total {
            return format!("No rows on page {} of {}", self.page, self.pages());
        }
        format!("Showing {}–{} of {}", self.start() + 1, (self.start() + self.per).min(self.total), self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_from_queries_and_links() {
        let p = Paging::from_query(None, None).with_total(10_000);
        assert_eq!((p.page, p.per, p.start(), p.pages()), (1, 50, 0, 200));
        assert_eq!((p.prev(), p.next()), (None, Some(2)));
        assert_eq!(p.summary(), "Showing 1–50 of 10000");
        let p = Paging::from_query(Some("200"), Some("50")).with_total(10_000);
        assert_eq!((p.start(), p.prev(), p.next()), (9950, Some(199), None));
        let p = Paging::from_query(Some("3"), Some("20")).with_total(45);
        assert_eq!((p.pages(), p.summary()), (3, "Showing 41–45 of 45".to_string()));
        // Nonsense and extremes.
        assert_eq!(Paging::from_query(Some("0"), Some("-1")), Paging { page: 1, per: 50, total: 0 });
        assert_eq!(Paging::from_query(Some("x"), Some("100000")).per, MAX_PER_PAGE);
        let beyond = Paging::from_query(Some("9"), None).with_total(10);
        assert_eq!((beyond.prev(), beyond.next(), beyond.summary()), (Some(1), None, "No rows on page 9 of 1".to_string()));
        let huge = Paging::from_query(Some(&usize::MAX.to_string()), None);
        assert_eq!(huge.start(), usize::MAX);
        assert_eq!(Paging::from_query(None, None).with_total(0).pages(), 1);
    }
}
