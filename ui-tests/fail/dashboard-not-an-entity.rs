// A path that is not a sea-orm entity.

tasktrail::dashboard! {
    pub struct Ops<std::string::String> {
        title: "Tasks",
    }
}

fn main() {}
