// The struct does not name its entity.

tasktrail::dashboard! {
    pub struct Ops {
        title: "Tasks",
    }
}

fn main() {}
